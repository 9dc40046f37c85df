"""The rows barksite keeps (jobs, API keys, uploaded voices and their consent recordings, engine breakers) and the
typed plan a job row holds.

Behaviour that belongs to a row lives on its model. The job's status changes in exactly one place,
`Job.transition`, which refuses illegal moves and applies the change with a conditional UPDATE, so two
workers that receive the same task can never both run it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey

from synthesis import engines
from synthesis.media.text import split_text


def process_name(pid: int | None = None) -> str:
    """This process (or `pid` on this host) as a job's `worker` names it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


class IllegalTransition(Exception):
    """A status change the job lifecycle does not allow (e.g. completed -> running)."""


class ApiKey(AbstractAPIKey):
    """A hashed API key (prefix.secret; only the prefix and a SHA-512 hash are stored)."""

    rate_limit_per_min = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute for this key. Empty: BARK_RATE_LIMIT_PER_MIN."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_keys",
        help_text="The user who sees this key's jobs and voices in the web UI. Empty: nobody but staff.",
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


class Job(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned"  # a dry run: validated and planned, never run
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # Which moves are legal. A running job may go back to queued when the sweep requeues it after its
    # worker died; failed and cancelled jobs may be retried by an operator.
    TRANSITIONS: dict[str, set[str]] = {
        Status.PLANNED: set(),
        Status.QUEUED: {Status.RUNNING, Status.CANCELLED, Status.FAILED},
        Status.RUNNING: {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.QUEUED},
        Status.COMPLETED: set(),
        Status.FAILED: {Status.QUEUED},
        Status.CANCELLED: {Status.QUEUED},
    }
    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)

    # What was asked.
    prompt = models.TextField()
    caption_text = models.TextField(blank=True)
    voice = models.CharField(max_length=200, blank=True)
    params = models.JSONField(
        default=dict, blank=True, help_text="temperatures, seed, modalities, video options, events"
    )
    plan = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher runs first (from routing_priorities).")
    output_prefix = models.CharField(max_length=200, default="audio")
    input_hash = models.CharField(max_length=64, blank=True, db_index=True, help_text="Hash of output-deciding inputs.")
    deduplicated_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    # Who asked.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)

    # What ran.
    engine = models.CharField(max_length=32)
    model = models.CharField(max_length=300, blank=True)
    device = models.CharField(max_length=32, blank=True)
    dtype = models.CharField(max_length=16, blank=True, help_text="Number format of the weights (Bark: BARK_DTYPE).")
    engine_settings = models.CharField(
        max_length=200,
        blank=True,
        help_text="Settings that changed the engine's output from its defaults (Bark: e.g. BARK_FINE_WINDOW=real); "
        "empty for the defaults.",
    )

    # When, and how far.
    submitted_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    worker = models.CharField(
        max_length=120, blank=True, help_text="host:pid of the process running it (a stopped cluster requeues by it)."
    )
    attempts = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=16, blank=True, help_text="audio or video while running")
    segments_done = models.PositiveIntegerField(default=0)
    segments_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    # What came out.
    duration_s = models.FloatField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    audio = models.FileField(blank=True, max_length=400)
    video = models.FileField(blank=True, max_length=400)
    captions_srt = models.FileField(blank=True, max_length=400)
    captions_vtt = models.FileField(blank=True, max_length=400)
    metadata = models.FileField(blank=True, max_length=400)
    artifact_sizes = models.JSONField(default=dict, blank=True, help_text="bytes per artifact name")
    timings = models.JSONField(default=dict, blank=True, help_text="seconds per stage")

    ARTIFACT_FIELDS = {
        "audio": "audio",
        "video": "video",
        "srt": "captions_srt",
        "vtt": "captions_vtt",
        "metadata": "metadata",
    }
    ARTIFACT_LABELS = {
        "audio": "Audio",
        "video": "Video",
        "srt": "Captions (SRT)",
        "vtt": "Captions (WebVTT)",
        "metadata": "Metadata (JSON)",
    }

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [models.Index(fields=["status", "-priority", "submitted_at"], name="job_queue_order")]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    # --- lifecycle -----------------------------------------------------------------------------------

    def transition(self, to: str, **fields: Any) -> bool:
        """Move to status `to` if nobody moved the job first; return whether this call made the move.

        The UPDATE is conditional on the status this object last saw, so of two workers claiming the
        same queued job exactly one succeeds. Raises IllegalTransition for moves the lifecycle forbids.
        """
        if to not in self.TRANSITIONS[self.status]:
            raise IllegalTransition(f"A {self.status} job cannot become {to}.")
        now = timezone.now()
        stamp = {
            str(self.Status.RUNNING): "started_at",
            self.Status.COMPLETED: "completed_at",
            self.Status.FAILED: "failed_at",
            self.Status.CANCELLED: "cancelled_at",
        }.get(to)
        if stamp:
            fields.setdefault(stamp, now)
        if to == self.Status.RUNNING:
            fields.setdefault("heartbeat_at", now)
            fields.setdefault("attempts", F("attempts") + 1)
        updated = Job.objects.filter(pk=self.pk, status=self.status).update(status=to, **fields)
        self.refresh_from_db()
        return updated == 1

    def claim(self) -> bool:
        """Take this queued job for running in this process; False when another worker (or a cancel) got there
        first."""
        return self.transition(self.Status.RUNNING, error="", segments_done=0, stage="audio", worker=process_name())

    def record_progress(self, *, segments_done: int | None = None, stage: str | None = None) -> bool:
        """Save progress and a heartbeat while running; return False once the job is no longer running
        (cancelled by a user, or swept), which tells the worker to stop."""
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if segments_done is not None:
            fields["segments_done"] = segments_done
        if stage is not None:
            fields["stage"] = stage
        updated = Job.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
        return updated == 1

    @property
    def origin(self) -> str:
        """Who asked, in words: the key, the user, or neither (the CLI, the open API or the shared key)."""
        if self.api_key_id is not None and self.api_key is not None:
            return f"key {self.api_key.name}"
        if self.owner_id is not None and self.owner is not None:
            return f"user {self.owner.get_username()}"
        return "no key (CLI, open API or BARK_API_KEY)"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED, self.Status.CANCELLED, self.Status.PLANNED)

    @property
    def progress(self) -> float:
        """0..1 across all stages; the video stage, when asked for, is counted as one more segment."""
        if self.status == self.Status.COMPLETED:
            return 1.0
        total = self.segments_total + (1 if self.get_plan().render_video else 0)
        return min(self.segments_done / total, 1.0) if total else 0.0

    def get_plan(self) -> JobPlan:
        """What this job will do, read back typed from the JSON `submit_job` stored."""
        return JobPlan.from_json(
            self.plan, self.params, engine=self.engine, model=self.model, voice=self.voice, prompt=self.prompt
        )

    def segment_name(self, index: int) -> str:
        """Storage name of finished segment `index`, written while the job runs (for streaming)."""
        return f"jobs/{self.id}/segments/{index:04d}.wav"

    def artifacts(self) -> dict[str, Any]:
        """The FileFields that hold a file, by public artifact name."""
        return {name: getattr(self, field) for name, field in self.ARTIFACT_FIELDS.items() if getattr(self, field)}


class VoiceConsent(models.Model):
    """A recording in which a person agrees to a voice being made of theirs (OpenAI's voice consents): a voice made
    through /v1/audio/voices names one, and a consent cannot be deleted while a voice still does. barksite keeps the
    recording; it does not compare its speaker with the voice's sample."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, help_text="A label, such as the name of the person who consents.")
    language = models.CharField(max_length=35, help_text="The BCP 47 tag of the consent phrase's language (en-US).")
    recording = models.FileField(max_length=400)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]  # newest first, as OpenAI lists them; the id breaks ties for cursors

    def __str__(self) -> str:
        return self.name


class Voice(models.Model):
    """A speaker prompt uploaded by a user or key: Bark's (semantic, coarse, fine) prompt arrays as .npz.

    A `.npz` upload is validated and ready at once. A reference clip needs Bark's codec and HuBERT or Bark's
    text model, so a worker turns it into a prompt (status pending -> ready or failed), never the web process,
    and records the method it used.
    """

    class Source(models.TextChoices):
        NPZ = "npz", "Bark .npz preset"
        CLIP = "clip", "Reference clip"

    class Method(models.TextChoices):
        """How a clip became the prompt (synthesis/engines/bark/cloning.py)."""

        HUBERT = "hubert", "HuBERT: semantic tokens from the audio"
        TRANSCRIPT = "transcript", "Transcript: semantic tokens from the words"

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=80)
    source = models.CharField(max_length=8, choices=Source.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.READY)
    error = models.TextField(blank=True)
    transcript = models.TextField(blank=True)
    method = models.CharField(
        max_length=16,
        choices=Method.choices,
        blank=True,
        help_text="How the worker built this clip voice (or tried to); empty for .npz presets and until it runs.",
    )
    clip = models.FileField(blank=True, max_length=400, help_text="The reference clip, until it is encoded.")
    prompt_file = models.FileField(blank=True, max_length=400)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    # The API refuses to delete a consent that voices still name (synthesis/jobs/consents.py); deleting its key or user
    # (an operator, in the admin) takes it anyway.
    consent = models.ForeignKey(
        VoiceConsent, null=True, blank=True, on_delete=models.SET_NULL, related_name="voices",
        help_text="The consent recording this voice was made with (voices made through /v1/audio/voices).",
    )  # fmt: skip

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def voice_id(self) -> str:
        """How requests name this voice."""
        return f"{engines.CUSTOM_PREFIX}{self.id}"

    @property
    def method_note(self) -> str:
        """How a clip voice was cloned, as the voice picker says it after the engine (empty for presets)."""
        notes = {"hubert": " · cloned from the audio", "transcript": " · cloned from a transcript"}
        return notes.get(self.method, "")


class EngineBreaker(models.Model):
    """The circuit breaker of one engine, shared by every worker on every host (see synthesis/jobs/breaker.py).
    No row means closed with no failures."""

    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"  # refusing work until `changed_at` + the cool-down
        HALF_OPEN = "half_open"  # one trial job is running

    engine = models.CharField(max_length=32, primary_key=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED)
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive engine faults.")
    last_error = models.TextField(blank=True)
    changed_at = models.DateTimeField(default=timezone.now, help_text="When the state last changed.")

    def __str__(self) -> str:
        return f"{self.engine}: {self.state}"


# --- what a job will do ------------------------------------------------------------------------------
# What a job will do, as one typed value: decided once by `jobs.submit_job`, stored on the job as JSON, read back
# with `Job.get_plan()`. Nothing else reads the stored JSON by key.
#
# The row keeps two JSON objects, because the API shows both: `params` (the request's settings as recorded) and `plan`
# (what the service decided: engine, voice per segment, segments with their cues, pauses, priority). Rows recorded
# before a key existed read back with the defaults below.


DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class JobPlan:
    # What runs, and on what.
    engine: str
    model: str
    voice: str
    segments: list[str]  # the texts to speak, cues included
    segment_voices: list[str] = field(default_factory=list)  # one voice per segment ([] on old rows: `voice`)
    pauses_ms: dict[int, int] = field(default_factory=dict)  # silence after a segment, where an event set one
    # How it sounds.
    text_temp: float = DEFAULT_TEMPERATURE
    waveform_temp: float = DEFAULT_TEMPERATURE
    seed: int | None = None
    # What comes out, and when.
    modalities: list[str] = field(default_factory=lambda: ["audio"])
    render_video: bool = False
    video: dict[str, Any] = field(default_factory=dict)  # validated video options; {} without a video
    output_prefix: str = "audio"
    priority: int = 0
    estimated_duration_s: float = 0.0
    # The request's own words, recorded as given.
    control_events: list[dict[str, Any]] = field(default_factory=list)
    routing_priorities: dict[str, float] = field(default_factory=dict)
    fresh: bool = False

    @property
    def wants_captions(self) -> bool:
        return self.render_video or "captions" in self.modalities

    def params_json(self) -> dict[str, Any]:
        """`Job.params`: the request's settings."""
        return {
            "text_temp": self.text_temp,
            "waveform_temp": self.waveform_temp,
            "seed": self.seed,
            "modalities": self.modalities,
            "render_video": self.render_video,
            "video": self.video,
            "control_events": self.control_events,
            "routing_priorities": self.routing_priorities,
            "fresh": self.fresh,
        }

    def plan_json(self) -> dict[str, Any]:
        """`Job.plan`: what the service decided (the settings that shape it are repeated for readers of the plan)."""
        return {
            "engine": self.engine,
            "model": self.model,
            "voice": self.voice,
            "segments": self.segments,
            "segment_count": len(self.segments),
            "segment_voices": self.segment_voices,
            "pauses_ms": {str(index): ms for index, ms in self.pauses_ms.items()},  # JSON keys are strings
            "estimated_duration_s": self.estimated_duration_s,
            "modalities": self.modalities,
            "render_video": self.render_video,
            "video": self.video or None,
            "control_events": self.control_events,
            "routing_priorities": self.routing_priorities,
            "priority": self.priority,
            "output_prefix": self.output_prefix,
        }

    @classmethod
    def from_json(
        cls, plan: dict[str, Any], params: dict[str, Any], *, engine: str, model: str, voice: str, prompt: str
    ) -> JobPlan:
        """The plan stored on a row; `engine`, `model`, `voice` and `prompt` are the row's own columns, which fill
        in for rows recorded without a plan."""
        return cls(
            engine=plan.get("engine", engine),
            model=plan.get("model", model),
            voice=plan.get("voice", voice),
            segments=plan.get("segments") or split_text(prompt),
            segment_voices=plan.get("segment_voices") or [],
            pauses_ms={int(index): ms for index, ms in (plan.get("pauses_ms") or {}).items()},
            text_temp=params.get("text_temp", DEFAULT_TEMPERATURE),
            waveform_temp=params.get("waveform_temp", DEFAULT_TEMPERATURE),
            seed=params.get("seed"),
            modalities=params.get("modalities", ["audio"]),
            render_video=bool(params.get("render_video")),
            video=params.get("video") or {},
            output_prefix=plan.get("output_prefix", "audio"),
            priority=plan.get("priority", 0),
            estimated_duration_s=plan.get("estimated_duration_s", 0.0),
            control_events=params.get("control_events", []),
            routing_priorities=params.get("routing_priorities", {}),
            fresh=bool(params.get("fresh")),
        )
