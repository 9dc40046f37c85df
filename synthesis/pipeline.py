"""Text in, stored artifacts out: the code a worker runs for a job, and the Python API behind it."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from synthesis import hooks
from synthesis.artifacts import store_artifact
from synthesis.audio import join_segments, write_wav
from synthesis.engines import (
    EngineFailed,
    EngineUnavailable,
    SynthesisCancelled,
    SynthesisOptions,
    default_engine_name,
    get_engine,
)
from synthesis.models import Job
from synthesis.segments import split_text

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 15


@dataclass
class AudioResult:
    sample_rate: int
    waveform: np.ndarray
    segments: list[str]
    spans: list[tuple[float, float]]  # each segment's (start, end) in seconds
    engine: str
    model: str
    device: str

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate


def synthesize_segments(
    segments: list[str],
    engine_name: str | None,
    options: SynthesisOptions,
    on_segment: Callable[[int, np.ndarray], bool | None] | None = None,
) -> AudioResult:
    """Run `segments` through an engine and join them. Raises EngineUnavailable/EngineFailed."""
    engine_name = engine_name or default_engine_name()
    if engine_name is None:
        raise EngineUnavailable("No engine can run here: " + "; ".join(_unavailable_reasons()))
    engine = get_engine(engine_name)
    engine.load()
    waveforms = engine.synthesize(segments, options, on_segment)
    joined, spans = join_segments(waveforms, engine.sample_rate)
    return AudioResult(engine.sample_rate, joined, segments, spans, engine.name, engine.model_id, engine.device)


def _unavailable_reasons() -> list[str]:
    from synthesis.engines import all_health

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


# --- running a job -------------------------------------------------------------------------------------


def run_job(job_id: str, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Claim job `job_id` and run it to completed/failed. Safe to call twice for the same job: only the
    call whose conditional update claims the queued row does any work. `on_progress(done, total)` is
    for terminals (the database records progress either way)."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != Job.Status.QUEUED:
        logger.info("job %s is not queued (%s); nothing to do", job_id, job and job.status)
        return
    if not job.transition(Job.Status.RUNNING, error="", segments_done=0, stage="audio"):
        logger.info("job %s was claimed by another worker", job_id)
        return
    hooks.emit("started", job_id=str(job.id), engine=job.engine, attempt=job.attempts)
    started = time.monotonic()
    try:
        with _heartbeat(job):
            _run_claimed(job, on_progress)
    except SynthesisCancelled:
        _discard_artifacts(job)
        logger.info("job %s was cancelled while running", job.id)
        hooks.emit("cancelled", job_id=str(job.id))
    except (EngineUnavailable, EngineFailed) as exc:
        _fail(job, str(exc), started)
    except Exception as exc:  # a bug or an environment fault: the job still ends with a readable error
        logger.exception("job %s crashed", job.id)
        _fail(job, f"Unexpected error while synthesizing ({type(exc).__name__}: {exc}).", started)


def _run_claimed(job: Job, on_progress: Callable[[int, int], None] | None) -> None:
    segments = job.plan.get("segments") or split_text(job.prompt)
    Job.objects.filter(pk=job.pk).update(segments_total=len(segments))
    job.segments_total = len(segments)

    def on_segment(index: int, _waveform: np.ndarray) -> bool:
        if on_progress:
            on_progress(index + 1, len(segments))
        return job.record_progress(segments_done=index + 1)

    t0 = time.monotonic()
    result = synthesize_segments(segments, job.engine, job_options(job), on_segment)
    timings = {"audio_s": round(time.monotonic() - t0, 3)}

    store_artifact(job, "audio", "wav", lambda path: write_wav(path, result.sample_rate, result.waveform))
    metadata = {
        "job_id": str(job.id),
        "engine": result.engine,
        "model": result.model,
        "device": result.device,
        "voice": job.voice,
        "sample_rate": result.sample_rate,
        "duration_s": round(result.duration_s, 3),
        "segments": [
            {"index": i, "text": text, "start_s": round(start, 3), "end_s": round(end, 3)}
            for i, (text, (start, end)) in enumerate(zip(result.segments, result.spans, strict=True))
        ],
        "params": job.params,
        "timings": timings,
    }
    store_artifact(job, "metadata", "json", lambda path: path.write_text(json.dumps(metadata, indent=2)))

    finished = job.transition(
        Job.Status.COMPLETED,
        audio=job.audio.name,
        metadata=job.metadata.name,
        artifact_sizes=job.artifact_sizes,
        model=result.model,
        device=result.device,
        sample_rate=result.sample_rate,
        duration_s=round(result.duration_s, 3),
        segments_done=len(segments),
        timings=timings,
        stage="",
    )
    if not finished:  # cancelled at the last moment: the row says so, the files must go
        _discard_artifacts(job)
        return
    hooks.emit("completed", job_id=str(job.id), engine=result.engine, duration_s=job.duration_s, **timings)


def job_options(job: Job) -> SynthesisOptions:
    params = job.params
    return SynthesisOptions(
        voice=job.voice or None,
        text_temp=params.get("text_temp", 0.7),
        waveform_temp=params.get("waveform_temp", 0.7),
        seed=params.get("seed"),
    )


def _fail(job: Job, error: str, started: float) -> None:
    _discard_artifacts(job)
    job.refresh_from_db()
    if job.status == Job.Status.RUNNING:
        job.transition(
            Job.Status.FAILED, error=error, stage="", timings={"failed_after_s": round(time.monotonic() - started, 3)}
        )
    hooks.emit("failed", job_id=str(job.id), engine=job.engine, error=error)


def _discard_artifacts(job: Job) -> None:
    """Remove this job's files so a failed or cancelled job points at nothing half-made."""
    directory = Path(settings.MEDIA_ROOT) / "jobs" / str(job.id)
    if hasattr(default_storage, "location"):
        shutil.rmtree(directory, ignore_errors=True)
    else:
        for name in [f.name for f in job.artifacts().values()]:
            default_storage.delete(name)


@contextmanager
def _heartbeat(job: Job) -> Iterator[None]:
    """Touch `heartbeat_at` every few seconds from a side thread while the job runs, so the sweep can
    tell a long segment from a dead worker: when the process dies, the heartbeat stops with it."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(HEARTBEAT_INTERVAL_S):
                Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
