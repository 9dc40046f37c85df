"""Submitting, cancelling and retrying jobs: the calls every surface (API, web form, admin,
`manage.py synthesize`) makes. Input *types* are checked by each surface's serializer or form; the rules
that need the database or the engines (which engine runs, whether the voice exists, queue admission,
dedupe) are checked here, once, and raise the domain errors below, which each surface turns into its
own kind of message (the API's exception handler maps them to HTTP)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from synthesis.engines import (
    CUSTOM_PREFIX,
    ENGINE_NAMES,
    EngineUnavailable,
    default_pace,
    engine_for_voice,
    get_engine,
)
from synthesis.jobs import breaker, hooks
from synthesis.jobs.artifacts import UnsafeOutputPath, safe_prefix
from synthesis.jobs.control import ControlError, apply_events, priority
from synthesis.jobs.lifecycle import enqueue, lock_queue
from synthesis.jobs.selectors import Caller, NotVisible, Owner, get_voice
from synthesis.media.text import split_text
from synthesis.models import ApiKey, Job, JobPlan, Voice

logger = logging.getLogger(__name__)

# What a request may ask for; the forms, serializers and the command line offer these same bounds.
TEMPERATURE_RANGE = (0.0, 1.5)
MAX_SEED = 2**32 - 1
# Plans' length estimates use an engine's documented pace (Engine.speech_pace) until it has finished
# PACE_HISTORY jobs here; after that its recent jobs give the pace.
PACE_HISTORY = 3


class InvalidRequest(Exception):
    """A request the service cannot accept as given; `field` names the input to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"The queue already holds {settings.BARK_MAX_QUEUE_SIZE} waiting jobs; try again in {retry_after} s."
        )
        self.retry_after = retry_after


@dataclass
class JobRequest:
    """Everything a caller may ask for, already type-checked by the surface it came through."""

    prompt: str
    engine: str | None = None
    voice: str | None = None
    text_temp: float = 0.7
    waveform_temp: float = 0.7
    seed: int | None = None
    caption_text: str = ""
    modalities: list[str] = field(default_factory=lambda: ["audio"])
    render_video: bool = False
    video: dict[str, Any] = field(default_factory=dict)
    control_events: list[dict[str, Any]] = field(default_factory=list)
    routing_priorities: dict[str, float] = field(default_factory=dict)
    output_path: str | None = None
    dry_run: bool | None = None  # None: a dry run exactly when no engine can run
    fresh: bool = False


def submit_job(request: JobRequest, *, owner: Owner = None, api_key: ApiKey | None = None, inline: bool = False) -> Job:
    """Validate and plan `request`, then record it as a planned (dry run), deduplicated or queued job.

    `inline` is for callers that run the job themselves right away (`manage.py synthesize`): the job is
    returned already claimed (running), never handed to the workers, and queue admission does not apply."""
    # Checks that need no engine come first: an engine's health check may import torch (seconds).
    _check_limits(request)
    _check_output_path(request.output_path)
    if request.voice and engine_for_voice(request.voice) is None:
        raise InvalidRequest("voice", _unknown_voice(request.voice))
    engine_name, can_run = _choose_engine(request)
    plan = make_plan(request, engine_name, owner, api_key)
    # An engine the caller chose (by name, or through one of its voices) must run unless this is a dry run;
    # only a request that leaves the engine open becomes a dry run by itself when nothing can run.
    chosen = bool(request.engine or request.voice)
    dry_run = (not can_run and not chosen) if request.dry_run is None else request.dry_run
    if not dry_run and not can_run:
        reason = get_engine(engine_name).health().reason
        raise EngineUnavailable(f"The {engine_name} engine cannot run here: {reason}")
    if not dry_run and (refused := breaker.refuses_new_jobs(engine_name)):
        raise EngineUnavailable(refused)
    job = Job(
        prompt=request.prompt,
        caption_text=request.caption_text,
        voice=plan.voice,
        engine=plan.engine,
        model=plan.model,
        params=plan.params_json(),
        plan=plan.plan_json(),
        priority=plan.priority,
        output_prefix=plan.output_prefix,
        owner=Caller.of(owner).user,  # a signed-in user, else nobody
        api_key=api_key,
        input_hash=_input_hash(request, plan),
    )
    if dry_run:
        job.status = Job.Status.PLANNED
        job.save()
        return job
    return _admit(job, fresh=request.fresh, inline=inline)


def make_plan(request: JobRequest, engine_name: str, owner: Owner, api_key: ApiKey | None) -> JobPlan:
    """What `request` will do on `engine_name`: its voices checked, its text split, its events applied."""
    engine = get_engine(engine_name)
    voice = _check_voice(request.voice or engine.default_voice(), engine_name, owner, api_key)
    prefix = _check_output_path(request.output_path)
    segments = split_text(request.prompt)
    render_video = request.render_video or "video" in request.modalities
    modalities = sorted(set(request.modalities) | ({"video"} if render_video else set()))
    try:
        applied = apply_events(request.control_events, segments, voice)
    except ControlError as exc:
        raise InvalidRequest("control_events", str(exc)) from None
    for event_voice in set(applied.segment_voices) - {voice}:
        _check_voice(event_voice, engine_name, owner, api_key, field="control_events")
    try:
        job_priority = priority(request.routing_priorities, modalities)
    except ControlError as exc:
        raise InvalidRequest("routing_priorities", str(exc)) from None
    return JobPlan(
        engine=engine_name,
        model=engine.model_id,
        voice=voice,
        segments=applied.segments,
        segment_voices=applied.segment_voices,
        pauses_ms=applied.pauses_ms,
        text_temp=request.text_temp,
        waveform_temp=request.waveform_temp,
        seed=request.seed,
        modalities=modalities,
        render_video=render_video,
        video=request.video,
        output_prefix=prefix,
        priority=job_priority,
        estimated_duration_s=round(len(request.prompt) / speech_pace(engine_name), 1),
        control_events=request.control_events,
        routing_priorities=request.routing_priorities,
        fresh=request.fresh,
    )


def _admit(job: Job, *, fresh: bool, inline: bool) -> Job:
    """Record a real submission: reuse an identical completed job's files, or queue it if there is room."""
    with transaction.atomic():
        lock_queue()
        original = _find_duplicate(job) if not fresh else None
        if original is not None:
            _copy_results(job, original)
            job.save()
            hooks.emit("submitted", job_id=str(job.id), engine=job.engine, deduplicated_from=str(original.id))
            return job
        waiting = Job.objects.filter(status=Job.Status.QUEUED).count()
        if waiting >= settings.BARK_MAX_QUEUE_SIZE and not inline:
            retry_after = estimate_wait_s(waiting)
            hooks.emit("rejected", reason="queue_full", waiting=waiting, retry_after=retry_after)
            raise QueueFull(retry_after)
        job.status = Job.Status.QUEUED
        job.save()
        if inline:
            job.claim()  # in this transaction: no worker ever sees it queued
        else:
            enqueue(job)
    hooks.emit("submitted", job_id=str(job.id), engine=job.engine, segments=len(job.get_plan().segments))
    return job


def speech_pace(engine_name: str) -> float:
    """Characters per second of audio: from the engine's recent completed jobs on this deployment once there
    are a few (the real pace of its voices), else a measured default."""
    recent = list(
        Job.objects.filter(
            engine=engine_name, status=Job.Status.COMPLETED, deduplicated_from__isnull=True, duration_s__gt=0
        )
        .order_by("-completed_at")
        .values_list("prompt", "duration_s")[:20]
    )
    if len(recent) < PACE_HISTORY:
        return default_pace(engine_name)
    return sum(len(prompt) for prompt, _ in recent) / sum(duration or 0.0 for _, duration in recent)


def cancel_job(job: Job) -> bool:
    """Cancel a queued or running job. A running worker notices at its next segment and stops."""
    if job.status not in Job.ACTIVE:
        return False
    cancelled = job.transition(Job.Status.CANCELLED, stage="")
    if cancelled:
        hooks.emit("cancelled", job_id=str(job.id))
    return cancelled


def retry_job(job: Job) -> bool:
    """Queue a failed or cancelled job again (an operator's decision, so queue admission does not apply)."""
    if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
        return False
    with transaction.atomic():
        requeued = job.transition(
            Job.Status.QUEUED, error="", segments_done=0, stage="", failed_at=None, cancelled_at=None, started_at=None
        )
        if requeued:
            enqueue(job)
    return requeued


def estimate_wait_s(waiting: int) -> int:
    """Seconds until a queue slot is likely to free up, from recent run times (for Retry-After)."""
    recent = (
        Job.objects.filter(status=Job.Status.COMPLETED, started_at__isnull=False, deduplicated_from__isnull=True)
        .order_by("-completed_at")
        .values_list("started_at", "completed_at")[:20]
    )
    runs = [(done - start).total_seconds() for start, done in recent if start and done]
    per_job = sum(runs) / len(runs) if runs else 30.0
    return max(1, min(3600, math.ceil(per_job / settings.BARK_MAX_CONCURRENCY)))


# --- validation helpers ----------------------------------------------------------------------------------


def _check_limits(request: JobRequest) -> None:
    """The bounds every surface shares (each also offers them in its own form, serializer or arguments)."""
    limit = settings.BARK_MAX_PROMPT_CHARS
    if not split_text(request.prompt):
        raise InvalidRequest("prompt", "The prompt is blank: write some text to speak.")
    if len(request.prompt) > limit:
        raise InvalidRequest("prompt", f"The prompt has {len(request.prompt)} characters; the limit is {limit}.")
    if len(request.caption_text) > limit:
        raise InvalidRequest("caption_text", f"caption_text is limited to {limit} characters.")
    low, high = TEMPERATURE_RANGE
    for name in ("text_temp", "waveform_temp"):
        value = getattr(request, name)
        if not low <= value <= high:
            raise InvalidRequest(name, f"Use a temperature from {low:g} to {high:g}; got {value:g}.")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise InvalidRequest("seed", f"Use a seed from 0 to {MAX_SEED}; got {request.seed}.")


def _choose_engine(request: JobRequest) -> tuple[str, bool]:
    """The engine that would run and whether it can run now."""
    implied = engine_for_voice(request.voice) if request.voice else None
    name = request.engine or implied or breaker.planning_engine()
    if request.engine and implied and request.engine != implied:
        raise InvalidRequest(
            "voice", f"The voice {request.voice!r} belongs to the {implied} engine, not {request.engine}."
        )
    try:
        engine = get_engine(name)
    except EngineUnavailable as exc:
        raise InvalidRequest("engine", str(exc)) from None
    return name, engine.health().ok


def _check_voice(voice: str, engine_name: str, owner: Owner, api_key: ApiKey | None, field: str = "voice") -> str:
    """`voice` if it exists for `engine_name` and the caller may use it, else InvalidRequest."""
    if voice.startswith(CUSTOM_PREFIX):
        try:
            mine = get_voice(Caller.of(owner, api_key), voice)
        except NotVisible:
            raise InvalidRequest(field, f"There is no voice {voice!r} of yours; list yours at /api/voices.") from None
        if mine.status != Voice.Status.READY:
            raise InvalidRequest(field, f"The voice {voice!r} is {mine.status}, not ready. {mine.error}".strip())
    implied = engine_for_voice(voice)
    if implied is None:
        raise InvalidRequest(field, _unknown_voice(voice))
    if implied != engine_name:
        raise InvalidRequest(field, f"The voice {voice!r} belongs to the {implied} engine, not {engine_name}.")
    return voice


def _unknown_voice(voice: str) -> str:
    examples = ", ".join(f"{get_engine(name).default_voice()!r}" for name in ENGINE_NAMES)
    return f"Unknown voice {voice!r}. Use a voice such as {examples}, or one of yours (see /api/voices)."


def _check_output_path(output_path: str | None) -> str:
    try:
        return safe_prefix(output_path)
    except UnsafeOutputPath as exc:
        raise InvalidRequest("output_path", str(exc)) from None


def _input_hash(request: JobRequest, plan: JobPlan) -> str:
    """Hash of the inputs that decide the output; empty without a seed (unseeded runs differ)."""
    if request.seed is None:
        return ""
    decisive = {
        "prompt": request.prompt,
        "caption_text": request.caption_text if plan.render_video else "",
        "engine": plan.engine,
        "model": plan.model,
        "voice": plan.voice,
        "text_temp": request.text_temp,
        "waveform_temp": request.waveform_temp,
        "seed": request.seed,
        "render_video": plan.render_video,
        "video": request.video if plan.render_video else {},
        "control_events": request.control_events,
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()


def _find_duplicate(job: Job) -> Job | None:
    if not job.input_hash:
        return None
    for original in Job.objects.filter(
        input_hash=job.input_hash, status=Job.Status.COMPLETED, deduplicated_from__isnull=True
    ).order_by("-completed_at")[:5]:
        if original.audio.name and original.audio.storage.exists(original.audio.name):
            return original
    return None


def _copy_results(job: Job, original: Job) -> None:
    now = timezone.now()
    job.status = Job.Status.COMPLETED
    job.deduplicated_from = original
    for name in (
        "model", "device", "dtype", "engine_settings", "duration_s", "sample_rate", "audio", "video", "captions_srt",
        "captions_vtt", "metadata", "artifact_sizes", "segments_total", "segments_done",
    ):  # fmt: skip
        setattr(job, name, getattr(original, name))
    job.started_at = job.completed_at = now
