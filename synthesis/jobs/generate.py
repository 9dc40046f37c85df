"""Text in, audio out, without a job: the engine's segments joined into one waveform (what a job's run uses too),
and the Python API built on it (`generate_audio`, `generate_multimedia`; see synthesis/__init__.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthesis.engines import EngineUnavailable, SynthesisOptions, all_health, get_engine
from synthesis.jobs import breaker
from synthesis.jobs.artifacts import write_atomically
from synthesis.media.audio import join_segments, write_wav
from synthesis.media.captions import build_cues, caption_parts, to_srt, to_vtt
from synthesis.media.text import split_text
from synthesis.media.video import render_video
from synthesis.media.video_options import validate_video_options


@dataclass
class AudioResult:
    sample_rate: int
    waveform: np.ndarray
    segments: list[str]
    spans: list[tuple[float, float]]  # each segment's (start, end) in seconds
    engine: str
    model: str
    device: str
    dtype: str = ""
    engine_settings: str = ""  # the settings that changed its output from its defaults (Engine.engine_settings)

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate

    def facts(self) -> dict[str, Any]:
        """What ran and what came out, as the job row and metadata.json both record it."""
        return {
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "engine_settings": self.engine_settings,
            "sample_rate": self.sample_rate,
            "duration_s": round(self.duration_s, 3),
        }


def synthesize_segments(
    segments: list[str],
    engine_name: str | None,
    options: SynthesisOptions,
    on_segment: Callable[[int, np.ndarray], bool | None] | None = None,
    pauses_s: dict[int, float] | None = None,
) -> AudioResult:
    """Run `segments` through an engine and join them (with `pauses_s` after the segments that have one).
    Raises EngineUnavailable/EngineFailed."""
    engine_name = engine_name or breaker.default_engine()
    if engine_name is None:
        raise EngineUnavailable("No engine can run here: " + "; ".join(_unavailable_reasons()))
    engine = get_engine(engine_name)
    engine.load()
    waveforms = engine.synthesize(segments, options, on_segment)
    joined, spans = join_segments(waveforms, engine.sample_rate, pauses_s)
    return AudioResult(
        engine.sample_rate,
        joined,
        segments,
        spans,
        engine.name,
        engine.model_id,
        engine.device,
        engine.dtype,
        engine.engine_settings,
    )


def _unavailable_reasons() -> list[str]:
    return [f"{h.name}: {h.reason}" for h in all_health()]


def generate_audio(
    text: str,
    *,
    engine: str | None = None,
    voice: str | None = None,
    text_temp: float = 0.7,
    waveform_temp: float = 0.7,
    seed: int | None = None,
) -> tuple[int, np.ndarray]:
    """The Python API: `(sample_rate, float32 waveform)` for `text`, without the web layer or a job."""
    segments = split_text(text)
    if not segments:
        raise ValueError("text is blank: there is nothing to say.")
    options = SynthesisOptions(voice=voice, text_temp=text_temp, waveform_temp=waveform_temp, seed=seed)
    result = synthesize_segments(segments, engine, options)
    return result.sample_rate, result.waveform


def generate_multimedia(
    text: str,
    out_dir: str | Path,
    *,
    engine: str | None = None,
    voice: str | None = None,
    text_temp: float = 0.7,
    waveform_temp: float = 0.7,
    seed: int | None = None,
    caption_text: str = "",
    video: dict[str, Any] | None = None,
    background_image: str | Path | None = None,
) -> dict[str, Path]:
    """The Python API for video: speak `text` and write audio.wav, captions.srt, captions.vtt, video.mp4 and
    metadata.json into `out_dir`; returns their paths by artifact name. `video` takes the same options as
    the REST API (default: 1080p, as everywhere; {"preset": "720p"} renders faster, "4k" slower)."""
    options = validate_video_options(video)  # before minutes of synthesis, not after
    segments = split_text(text)
    if not segments:
        raise ValueError("text is blank: there is nothing to say.")
    synthesis_options = SynthesisOptions(voice=voice, text_temp=text_temp, waveform_temp=waveform_temp, seed=seed)
    t0 = time.monotonic()
    result = synthesize_segments(segments, engine, synthesis_options)
    timings = {"audio_s": round(time.monotonic() - t0, 3)}
    cues = build_cues(caption_parts(result.segments, result.spans, caption_text), result.spans)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"audio": "audio.wav", "srt": "captions.srt", "vtt": "captions.vtt", "video": "video.mp4"}
    paths = {name: out / file for name, file in files.items()} | {"metadata": out / "metadata.json"}
    write_atomically(paths["audio"], lambda path: write_wav(path, result.sample_rate, result.waveform))
    write_atomically(paths["srt"], lambda path: path.write_text(to_srt(cues), encoding="utf-8"))
    write_atomically(paths["vtt"], lambda path: path.write_text(to_vtt(cues), encoding="utf-8"))
    t0 = time.monotonic()
    image = Path(background_image) if background_image else None
    write_atomically(
        paths["video"],
        lambda path: render_video(result.waveform, result.sample_rate, cues, options, path, background_image=image),
    )
    timings["video_s"] = round(time.monotonic() - t0, 3)
    metadata = metadata_for(result, {"video": options}, timings)
    write_atomically(paths["metadata"], lambda path: path.write_text(json.dumps(metadata, indent=2)))
    return paths


def metadata_for(
    result: AudioResult, params: dict[str, Any], timings: dict[str, float], **extra: Any
) -> dict[str, Any]:
    """metadata.json: what ran, each segment's text and time span, the parameters and the timings."""
    return {
        **extra,
        "engine": result.engine,
        **result.facts(),
        "segments": [
            {"index": i, "text": text, "start_s": round(start, 3), "end_s": round(end, 3)}
            for i, (text, (start, end)) in enumerate(zip(result.segments, result.spans, strict=True))
        ],
        "params": params,
        "timings": timings,
    }
