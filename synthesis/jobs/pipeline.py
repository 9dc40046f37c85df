"""Running a job: claim it, speak its segments (storing each as it finishes), store its artifacts, and end it
completed, failed with a readable error, cancelled or requeued (lifecycle.py). The audio comes from generate.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

from synthesis.engines import (
    CUSTOM_PREFIX,
    EngineFailed,
    EngineLost,
    EngineUnavailable,
    InputRefused,
    SynthesisCancelled,
    SynthesisOptions,
    get_engine,
)
from synthesis.jobs import breaker, hooks, lifecycle, voices
from synthesis.jobs.artifacts import StorageFull, store_artifact, store_segment
from synthesis.jobs.generate import AudioResult, metadata_for, synthesize_segments
from synthesis.media.audio import write_wav
from synthesis.media.captions import Cue, build_cues, caption_parts, to_srt, to_vtt
from synthesis.media.video import RenderCancelled, VideoRenderError, render_video
from synthesis.media.video_options import VideoOptionsError, validate_video_options
from synthesis.models import Job, Voice

logger = logging.getLogger(__name__)


class VideoStageFailed(Exception):
    """The audio was made and stored but the video was not: the job fails and keeps what it made.
    `kept` holds the job fields (artifact names, sizes, audio facts) to record on the failed row."""

    def __init__(self, message: str, kept: dict[str, Any]):
        super().__init__(message)
        self.kept = kept


def next_job_id(preferred: str, skip_engines: Collection[str] = ()) -> str | None:
    """Which queued job a worker's task should run: `preferred` (the job the task was sent for) unless a
    job of higher priority is waiting. Every queued job has one task in the queue, so a task that runs
    another job leaves its own job to that job's task, and each job still runs once. Jobs for
    `skip_engines` (whose circuit breaker is open) are left waiting."""
    queued = Job.objects.filter(status=Job.Status.QUEUED).exclude(engine__in=skip_engines)
    best = queued.order_by("-priority", "submitted_at").values_list("id", "priority").first()
    if best is None:
        return None
    own_priority = queued.filter(pk=preferred).values_list("priority", flat=True).first()
    return preferred if own_priority is not None and own_priority >= best[1] else str(best[0])


def run_job(job_id: str, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Claim queued job `job_id` and run it to completed/failed. Safe to call twice for the same job: only
    the call whose conditional update claims the queued row does any work."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != Job.Status.QUEUED:
        logger.info("job %s is not queued (%s); nothing to do", job_id, job and job.status)
        return
    if not job.claim():
        logger.info("job %s was claimed by another worker", job_id)
        return
    try:
        run_claimed_job(job, on_progress)
    except Job.DoesNotExist:  # deleted (by an operator or purge_jobs) while it ran: nothing is left to record
        lifecycle.discard_files(job)
        logger.info("job %s was deleted while it ran; its files are removed", job_id)


def run_claimed_job(job: Job, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Run a job this process has claimed (it is `running`). `on_progress(done, total)` is for terminals;
    the database records progress either way."""
    hooks.emit("started", job_id=str(job.id), engine=job.engine, attempt=job.attempts)
    started = time.monotonic()
    try:
        with _heartbeat(job):
            breaker.run_guarded(
                job,
                lambda: _run_claimed(job, on_progress),
                passthrough=(SynthesisCancelled, VideoStageFailed, EngineLost),  # EngineLost: requeued below
            )
    except SynthesisCancelled:
        job.refresh_from_db(fields=["status"])
        if job.status != Job.Status.CANCELLED:  # requeued by the sweep: its next run owns the files now
            logger.warning("job %s stopped: it is %s, no longer running here", job.id, job.status)
            return
        lifecycle.discard_files(job)
        logger.info("job %s was cancelled while running", job.id)
        hooks.emit("cancelled", job_id=str(job.id))
    except EngineLost as exc:  # not the job's fault: it runs again (within BARK_JOB_MAX_ATTEMPTS)
        lifecycle.requeue(job, str(exc), count_attempt=True)
    except VideoStageFailed as exc:
        lifecycle.fail(job, str(exc), kept={**exc.kept, "timings": _failed_after(exc.kept.get("timings", {}), started)})
    except (EngineUnavailable, EngineFailed, StorageFull) as exc:
        lifecycle.fail(job, str(exc), kept={"timings": _failed_after({}, started)})
    except Exception as exc:  # retries did not cure it, or a bug: the job still ends with a readable error
        service = breaker.outage_of(exc)
        if service == breaker.DATABASE:  # not the job's fault: it runs again (if the database is down, the sweep
            # requeues it later, once the row can be written again)
            lifecycle.requeue(job, f"The database was unreachable ({exc}).", count_attempt=True)
            return
        if service is not None:
            logger.warning("job %s: %s was unreachable: %s", job.id, service, exc)
            error = f"{service[0].upper()}{service[1:]} could not be reached ({exc}); retry the job once it is back."
        else:
            logger.exception("job %s crashed", job.id)
            error = f"Unexpected error while synthesizing ({type(exc).__name__}: {exc})."
        lifecycle.fail(job, error, kept={"timings": _failed_after({}, started)})


def _run_claimed(job: Job, on_progress: Callable[[int, int], None] | None) -> None:
    claimed_at = time.monotonic()
    plan = job.get_plan()
    segments = plan.segments
    Job.objects.filter(pk=job.pk).update(segments_total=len(segments))
    job.segments_total = len(segments)

    engine = get_engine(job.engine)

    def on_segment(index: int, waveform: np.ndarray) -> bool:
        # Each finished segment is stored first, so streams and players can serve it while the rest run.
        store_segment(job, index, lambda path: write_wav(path, engine.sample_rate, waveform))
        still_running = job.record_progress(segments_done=index + 1)
        if on_progress and still_running:
            on_progress(index + 1, len(segments))
        return still_running

    t0 = time.monotonic()
    pauses_s = {index: ms / 1000 for index, ms in plan.pauses_ms.items()}
    result = synthesize_segments(segments, job.engine, job_options(job), on_segment, pauses_s)
    timings = {"audio_s": round(time.monotonic() - t0, 3)}

    store_artifact(job, "audio", "wav", lambda path: write_wav(path, result.sample_rate, result.waveform))
    if plan.wants_captions:
        cues = build_cues(caption_parts(result.segments, result.spans, job.caption_text), result.spans)
        store_artifact(job, "captions_srt", "srt", lambda path: path.write_text(to_srt(cues), encoding="utf-8"))
        store_artifact(job, "captions_vtt", "vtt", lambda path: path.write_text(to_vtt(cues), encoding="utf-8"))
    if plan.render_video:
        timings["video_s"] = _render_job_video(job, result, cues, timings)
    metadata = metadata_for(result, plan.params_json(), timings, job_id=str(job.id), voice=job.voice)
    store_artifact(job, "metadata", "json", lambda path: path.write_text(json.dumps(metadata, indent=2)))

    finished = job.transition(
        Job.Status.COMPLETED,
        **_made(job, result),
        segments_done=len(segments),
        timings=timings,
        stage="",
    )
    if not finished:  # cancelled at the last moment: the row says so, the files must go
        lifecycle.discard_files(job)
        return
    run_s = round(time.monotonic() - claimed_at, 3)
    hooks.emit(
        "completed", job_id=str(job.id), engine=result.engine, device=result.device, duration_s=job.duration_s,
        run_s=run_s, **timings,
    )  # fmt: skip


def _render_job_video(job: Job, result: AudioResult, cues: list[Cue], timings: dict[str, float]) -> float:
    """Render and store the job's MP4; return the seconds it took. A failure raises VideoStageFailed,
    which fails the job but keeps the audio and captions already stored."""
    if not job.record_progress(stage="video"):
        raise SynthesisCancelled("The job was cancelled before its video was rendered.")
    t0 = time.monotonic()
    try:
        options = validate_video_options(job.get_plan().video)
        store_artifact(
            job,
            "video",
            "mp4",
            lambda path: render_video(
                result.waveform,
                result.sample_rate,
                cues,
                options,
                path,
                should_continue=job.record_progress,  # False once the job is cancelled
            ),
        )
    except RenderCancelled as exc:
        raise SynthesisCancelled(str(exc)) from exc
    except Exception as exc:
        if not isinstance(exc, VideoRenderError | VideoOptionsError):
            logger.exception("job %s: video rendering crashed", job.id)
        kept = {**_made(job, result), "timings": {**timings, "video_failed_after_s": round(time.monotonic() - t0, 3)}}
        raise VideoStageFailed(f"The video could not be rendered: {exc} The audio was kept.", kept) from exc
    return round(time.monotonic() - t0, 3)


def _made(job: Job, result: AudioResult) -> dict[str, Any]:
    """The fields that record what this run made so far: artifact names and sizes, and the audio's facts."""
    files = {field: getattr(job, field).name for field in Job.ARTIFACT_FIELDS.values() if getattr(job, field)}
    return {**files, "artifact_sizes": job.artifact_sizes, **result.facts()}


def job_options(job: Job) -> SynthesisOptions:
    plan = job.get_plan()
    segment_voices = plan.segment_voices or None
    custom = {voice for voice in [job.voice, *(segment_voices or [])] if voice and voice.startswith(CUSTOM_PREFIX)}
    return SynthesisOptions(
        voice=job.voice or None,
        text_temp=plan.text_temp,
        waveform_temp=plan.waveform_temp,
        seed=plan.seed,
        segment_voices=segment_voices,
        priority=job.priority,
        voice_prompts={voice: _voice_prompt(voice) for voice in custom},
    )


def _voice_prompt(voice_id: str) -> dict[str, np.ndarray]:
    voice = Voice.objects.filter(pk=voice_id.removeprefix(CUSTOM_PREFIX), status=Voice.Status.READY).first()
    if voice is None:
        raise InputRefused(f"The voice {voice_id} no longer exists or is not ready; pick another voice and retry.")
    return voices.prompt_arrays(voice)


def _failed_after(timings: dict[str, float], started: float) -> dict[str, float]:
    return {**timings, "failed_after_s": round(time.monotonic() - started, 3)}


@contextmanager
def _heartbeat(job: Job) -> Iterator[None]:
    """Touch `heartbeat_at` every few seconds from a side thread while the job runs, so the sweep can
    tell a long segment from a dead worker: when the process dies, the heartbeat stops with it."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.BARK_HEARTBEAT_S):
                try:
                    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
                except Exception as exc:  # a busy or lost database: beat again next time rather than go silent
                    logger.warning("job %s: heartbeat failed: %s", job.pk, exc)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
