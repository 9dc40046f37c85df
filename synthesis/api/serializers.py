"""What the API accepts (SynthesisRequest) and what it answers (SynthesisResponse, JobStatusResponse).

Input types are strict: JSON has types, so a string where a number belongs is a 400, not a guess.
Unknown fields are ignored, not refused, so clients written for a newer server keep working; the
response lists them under `warnings` so a misspelt field does not pass unnoticed. The rules that need
the database or the engines (voice exists, engine matches voice, output path, queue) are checked by
`synthesis.jobs.submit.submit_job`, once for every surface.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from synthesis.engines import ENGINE_NAMES, engine_for_voice
from synthesis.jobs.control import CUES, MAX_EVENTS, MAX_PAUSE_MS, MAX_PRIORITY_WEIGHT, MODALITIES
from synthesis.jobs.submit import MAX_SEED, TEMPERATURE_RANGE, JobRequest
from synthesis.media.text import split_text
from synthesis.media.video_options import VideoOptionsError, validate_video_options
from synthesis.models import Job


def within_prompt_limit(value: str, name: str) -> str:
    """`value`, if it fits BARK_MAX_PROMPT_CHARS (the prompt, or OpenAI's `input`)."""
    if len(value) > settings.BARK_MAX_PROMPT_CHARS:
        raise serializers.ValidationError(
            f"The {name} has {len(value)} characters; the limit is {settings.BARK_MAX_PROMPT_CHARS}."
        )
    return value


LOWEST, HIGHEST = TEMPERATURE_RANGE


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "object",
        "description": "Video overrides: preset (4k, 1080p, 720p), resolution (WIDTHxHEIGHT or a preset), "
        "fps (1-60), video_bitrate ('8000k', '8M'), audio_bitrate ('192k'), video_codec (libx264), "
        "audio_codec (aac). Bounds: GET /api/capabilities.",
        "additionalProperties": True,
        "example": {"resolution": "1920x1080", "fps": 30},
    }
)
class VideoOptionsField(serializers.Field):
    """Checked and normalised by `synthesis.media.video_options`, the table the renderer reads too."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        try:
            return validate_video_options(data)
        except VideoOptionsError as exc:
            # An error about the whole object (not an object at all) stays on `video` itself.
            detail = [exc.message] if exc.field == "video" else {exc.field: [exc.message]}
            raise serializers.ValidationError(detail) from None

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        return value


class ControlEventSerializer(serializers.Serializer):
    """`{"type": "pause", "segment": 0, "ms": 500}` (silence after segment 0), `{"type": "voice", "segment": 2,
    "voice": "v2/en_speaker_9"}` (segment 2 on in that voice) or `{"type": "cue", "segment": 1, "cue": "[laughs]"}`
    (the cue at the start of segment 1). `synthesis.jobs.control` applies them; this checks their shape."""

    REQUIRES = {"pause": "ms", "voice": "voice", "cue": "cue"}

    type = serializers.ChoiceField(choices=tuple(REQUIRES))
    segment = StrictIntegerField(min_value=0, help_text="Segment index (0-based).")
    ms = StrictIntegerField(min_value=0, max_value=MAX_PAUSE_MS, required=False, help_text="Pause length.")
    voice = StrictCharField(max_length=200, required=False, help_text="Voice from here on.")
    cue = serializers.ChoiceField(choices=CUES, required=False, help_text="Cue to insert, e.g. [laughs].")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        needed = self.REQUIRES[attrs["type"]]
        if needed not in attrs:
            raise serializers.ValidationError({needed: [f"A {attrs['type']} event needs '{needed}'."]})
        stray = sorted((set(self.REQUIRES.values()) - {needed}) & set(attrs))
        if stray:
            raise serializers.ValidationError({stray[0]: [f"'{stray[0]}' does not belong in a {attrs['type']} event."]})
        voice = attrs.get("voice")
        if voice is not None and engine_for_voice(voice) is None:
            raise serializers.ValidationError({"voice": [f"Unknown voice {voice!r}."]})
        return {"type": attrs["type"], "segment": attrs["segment"], needed: attrs[needed]}


class SynthesisRequestSerializer(serializers.Serializer):
    prompt = StrictCharField(help_text="Text to speak (bounded by BARK_MAX_PROMPT_CHARS).")
    caption_text = StrictCharField(required=False, allow_blank=True, default="", help_text="Text shown in video.")
    modalities = serializers.ListField(
        child=serializers.ChoiceField(choices=MODALITIES), required=False, default=["audio"], allow_empty=False
    )
    render_video = StrictBooleanField(required=False, default=False)
    dry_run = StrictBooleanField(
        required=False, allow_null=True, default=None, help_text="Plan only. Default: true when no engine can run."
    )
    output_path = StrictCharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False, max_length=300,
        help_text="Artifact file prefix, relative, below the job's own directory ('chapter1/intro').",
    )  # fmt: skip
    text_temp = StrictFloatField(
        required=False, default=0.7, min_value=TEMPERATURE_RANGE[0], max_value=TEMPERATURE_RANGE[1]
    )
    waveform_temp = StrictFloatField(
        required=False, default=0.7, min_value=TEMPERATURE_RANGE[0], max_value=TEMPERATURE_RANGE[1]
    )
    voice = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=200, help_text="e.g. v2/en_speaker_6"
    )
    engine = serializers.ChoiceField(choices=(*ENGINE_NAMES, "auto"), required=False, allow_null=True)
    seed = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_SEED)
    fresh = StrictBooleanField(required=False, default=False, help_text="Run again even if an identical job exists.")
    control_events = ControlEventSerializer(many=True, required=False, max_length=MAX_EVENTS)  # type: ignore[call-arg]  # passed on to the ListSerializer that many=True makes
    routing_priorities = serializers.DictField(
        child=StrictFloatField(min_value=0.0, max_value=MAX_PRIORITY_WEIGHT),
        required=False,
        help_text="modality -> weight 0-10",
    )
    video = VideoOptionsField(required=False, allow_null=True)

    def validate_prompt(self, value: str) -> str:
        return within_prompt_limit(value, "prompt")

    def validate_caption_text(self, value: str) -> str:
        if len(value) > settings.BARK_MAX_PROMPT_CHARS:
            raise serializers.ValidationError(
                f"caption_text is limited to {settings.BARK_MAX_PROMPT_CHARS} characters."
            )
        return value

    def validate_routing_priorities(self, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(MODALITIES))
        if unknown:
            raise serializers.ValidationError(f"Unknown modality {unknown[0]!r}; use {', '.join(MODALITIES)}.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        segments = len(split_text(attrs["prompt"]))
        errors: dict[Any, Any] = {
            index: {"segment": [f"The prompt has {segments} segment(s); segment {event['segment']} does not exist."]}
            for index, event in enumerate(attrs.get("control_events") or [])
            if event["segment"] >= segments
        }
        if errors:
            raise serializers.ValidationError({"control_events": errors})
        attrs["modalities"] = [m for m in MODALITIES if m in attrs["modalities"]]  # sorted, without repeats
        wants_video = attrs["render_video"] or "video" in attrs["modalities"]
        if attrs.get("video") is None:
            # A video job records the settings it will render with; an audio job records none.
            attrs["video"] = validate_video_options({}) if wants_video else {}
        return attrs

    @property
    def warnings(self) -> list[str]:
        if not isinstance(self.initial_data, dict):
            return []
        return [f"Unknown field {name!r} was ignored." for name in sorted(set(self.initial_data) - set(self.fields))]

    def job_request(self) -> JobRequest:
        data = dict(self.validated_data)
        data["engine"] = None if data.get("engine") in (None, "auto") else data["engine"]
        data["voice"] = data.get("voice") or None
        return JobRequest(**data)


class ProgressSerializer(serializers.Serializer):
    segments_done = serializers.IntegerField()
    segments_total = serializers.IntegerField()
    fraction = serializers.FloatField(source="progress", help_text="0..1 across all stages.")
    stage = serializers.CharField(help_text="audio or video while running, else empty.")


class JobSerializer(serializers.Serializer):
    """JobStatusResponse: a job as the API shows it."""

    job_id = serializers.UUIDField(source="id")
    status = serializers.ChoiceField(choices=Job.Status.choices)
    plan = serializers.JSONField(help_text="Segments, engine, model, voice, estimated duration, video settings.")
    params = serializers.JSONField(help_text="The request's settings as recorded.")
    artifacts = serializers.SerializerMethodField(help_text="Artifact name -> download URL (empty until completed).")
    error = serializers.SerializerMethodField()
    progress = ProgressSerializer(source="*")
    engine = serializers.CharField()
    model = serializers.CharField()
    voice = serializers.CharField()
    device = serializers.CharField()
    dtype = serializers.CharField(help_text="Number format of the weights that ran (Bark: BARK_DTYPE), if any.")
    engine_settings = serializers.CharField(
        help_text="Settings that changed the engine's output from its defaults, as NAME=value (Bark: BARK_FINE_WINDOW, "
        "BARK_COARSE_WINDOW, BARK_TOP_K, BARK_TOP_P, BARK_MIN_EOS_P); empty for the defaults."
    )
    duration_s = serializers.FloatField(allow_null=True)
    sample_rate = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    deduplicated_from = serializers.UUIDField(
        source="deduplicated_from_id", allow_null=True, help_text="The completed job whose artifacts were reused."
    )

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "format": "uri"}})
    def get_artifacts(self, job: Job) -> dict[str, str]:
        request = self.context["request"]
        return {
            name: request.build_absolute_uri(reverse("api-job-artifact", args=[job.id, name]))
            for name in job.artifacts()
        }

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Why it failed; null unless it did."))
    def get_error(self, job: Job) -> str | None:
        return job.error or None


class SubmissionSerializer(JobSerializer):
    """SynthesisResponse: the job just recorded, plus notes about the request itself."""

    warnings = serializers.SerializerMethodField()

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def get_warnings(self, job: Job) -> list[str]:
        return self.context.get("warnings", [])


class JobPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = JobSerializer(many=True)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid, malformed_json, not_authenticated, not_found, rate_limited, …")
    message = serializers.CharField()
    fields = serializers.DictField(  # type: ignore[assignment]  # DRF's metaclass takes declared fields off the class
        child=serializers.ListField(child=serializers.CharField()), required=False, help_text="Field -> messages."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


_ERRORS = {
    400: "Invalid request: field messages under error.fields; malformed JSON is code malformed_json.",
    401: "Missing, unknown, revoked or expired API key.",
    404: "No such job visible to this caller (unknown id, not a UUID, or another key's job).",
    409: "The job is finished and cannot be cancelled.",
    413: "The request body exceeds BARK_MAX_BODY_BYTES.",
    415: "The body is not in the format this route takes (JSON; multipart for voice uploads).",
    429: "Rate limit exceeded (code rate_limited) or queue full (code queue_full); see the Retry-After header.",
    503: "No engine can run the job (the message says why); dry runs still work.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=_ERRORS[code]) for code in codes}
