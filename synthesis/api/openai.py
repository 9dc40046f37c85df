"""OpenAI-compatible speech: `POST /v1/audio/speech` and `GET /v1/models`, so OpenAI's client libraries
work unchanged with `base_url="http://host/v1"` and a barksite key as their api_key.

A speech request becomes an ordinary job (same auth, rate limit, queue admission, job record), and the
request waits for it: up to BARK_SPEECH_TIMEOUT seconds for a qcluster worker to finish it. When no
qcluster is running at all (its heartbeat is missing from the shared cache), the request thread runs the
job itself instead of waiting for a worker that will never come, so the endpoint also works under a bare
`runserver`. The answer is the whole file, or with `stream_format: "sse"` OpenAI's server-sent events
(`synthesis.api.openai_stream`), or with `stream: true` the audio's bytes, both as segments finish. `instructions`
become the engine's cues where it has words for them, and the response's X-Instructions-Applied or
X-Instructions-Ignored header says what happened to them. Errors use OpenAI's shape:
`{"error": {"message", "type", "param", "code"}}` (`synthesis.api.errors`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from synthesis.api.auth import caller, submitter
from synthesis.api.exceptions import Conflict
from synthesis.api.health import live_clusters
from synthesis.api.limits import ReadRateThrottle, SubmitRateThrottle
from synthesis.api.openai_stream import sse_response
from synthesis.api.serializers import StrictCharField, StrictFloatField, within_prompt_limit
from synthesis.engines import CUSTOM_PREFIX, ENGINE_NAMES, cues_for_instructions, engine_for_voice, get_engine
from synthesis.http.streaming import STREAM_FORMATS, streaming_response
from synthesis.jobs import breaker, pipeline
from synthesis.jobs.consents import custom_voice_id
from synthesis.jobs.selectors import Caller, NotVisible, get_voice
from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.media.ffmpeg import FfmpegFailed
from synthesis.media.transcode import FORMATS, transcode
from synthesis.models import Job, Voice

# OpenAI's model names run whichever engine the server would pick by default.
GENERIC_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
# OpenAI's voice names; each engine picks its own voice for each (`Engine.voice_for_alias`).
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage", "shimmer", "verse",
)  # fmt: skip
# OpenAI's bound on `instructions` (its bound on `input`, 4096, is BARK_MAX_PROMPT_CHARS here).
MAX_INSTRUCTIONS_CHARS = 4096


class SynthesisFailed(APIException):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "synthesis_failed"


class SpeechTimeout(APIException):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "timeout"


class VoiceNotReady(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "voice_not_ready"
    param = "voice"


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object", "properties": {"id": {"type": "string"}}}]})
class VoiceField(serializers.Field):
    """A voice name or id, or OpenAI's newer `{"id": ...}` object form."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, dict):
            data = data.get("id")
        if not isinstance(data, str) or not data.strip():
            raise serializers.ValidationError(
                "Expected a voice name such as 'alloy' or an id such as 'v2/en_speaker_6'."
            )
        return data.strip()

    def to_representation(self, value: str) -> str:
        return value


class SpeechRequestSerializer(serializers.Serializer):
    model = StrictCharField(max_length=300, help_text="tts-1, tts-1-hd, bark, piper, or an engine's model id.")
    input = StrictCharField(help_text="The text to speak.")
    voice = VoiceField(help_text="alloy, echo, fable, onyx, nova, shimmer, …, or a voice id (v2/en_speaker_6).")
    response_format = serializers.ChoiceField(choices=tuple(FORMATS), default="mp3", required=False)
    speed = StrictFloatField(min_value=0.25, max_value=4.0, default=1.0, required=False)
    instructions = StrictCharField(
        required=False, allow_blank=True, default="", max_length=MAX_INSTRUCTIONS_CHARS,
        help_text="Cues where the engine has words for them (Bark: laugh, sigh, sing, man, woman, …); the "
        "X-Instructions-Applied or X-Instructions-Ignored header says what was done.",
    )  # fmt: skip
    stream_format = serializers.ChoiceField(
        choices=("audio", "sse"), default="audio", required=False,
        help_text="sse: OpenAI's speech.audio.delta events as segments finish, then speech.audio.done with usage "
        "(wav, pcm or mp3; speed 1.0).",
    )  # fmt: skip
    stream = serializers.BooleanField(
        default=False, required=False, help_text="Send audio as segments finish (wav, pcm or mp3; speed 1.0)."
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("stream") or data.get("stream_format") == "sse":
            if data.get("response_format", "mp3") not in STREAM_FORMATS:
                raise serializers.ValidationError(
                    {"response_format": f"Streaming sends {', '.join(STREAM_FORMATS)}; not the others."}
                )
            if data.get("speed", 1.0) != 1.0:
                raise serializers.ValidationError({"speed": "Streaming plays at speed 1.0 only."})
        return data

    def validate_input(self, value: str) -> str:
        return within_prompt_limit(value, "input")


def models(runnable_only: bool = True) -> list[dict[str, Any]]:
    """The model names the speech endpoint accepts, in OpenAI's model-object shape. By default only those that
    can run here (what GET /v1/models lists); OpenAI's generic names run the default engine, so they are listed
    when any engine can run."""
    default = breaker.default_engine()
    entries = [(name, default) for name in GENERIC_MODELS if default or not runnable_only]
    for engine in ENGINE_NAMES:
        if runnable_only and not get_engine(engine).health().ok:
            continue
        entries += [(engine, engine), (get_engine(engine).model_id, engine)]
    return [
        {"id": model_id, "object": "model", "created": 0, "owned_by": "barksite", "engine": engine}
        for model_id, engine in entries
    ]


def resolve(model: str, voice: str, who: Caller) -> tuple[str, str]:
    """The engine and voice id for an OpenAI (model, voice) pair; ValidationError names the bad one. A model
    whose engine cannot run resolves too: submit_job then answers 503 engine_unavailable with the reason."""
    named = {entry["id"]: entry["engine"] for entry in models(runnable_only=False) if entry["id"] not in GENERIC_MODELS}
    if model not in named and model not in GENERIC_MODELS:
        raise serializers.ValidationError({"model": [f"Unknown model {model!r}; GET /v1/models lists them."]})
    engine = named.get(model)
    if voice in OPENAI_VOICES:
        engine = engine or breaker.planning_engine()  # no runnable engine: submit_job answers 503
        return engine, get_engine(engine).voice_for_alias(voice)
    voice_id = custom_voice_id(voice) or voice  # a voice made by POST /v1/audio/voices
    implied = engine_for_voice(voice_id)
    if implied is None:
        names = ", ".join(OPENAI_VOICES)
        raise serializers.ValidationError({"voice": [f"Unknown voice {voice!r}; use {names} or a voice id."]})
    if voice_id.startswith(CUSTOM_PREFIX):
        check_ready(who, voice_id, voice)
    return engine or implied, voice_id  # an engine that does not own the voice is refused by submit_job


def check_ready(who: Caller, voice_id: str, named: str) -> None:
    """An uploaded voice of the caller's that is ready to speak, or the error that says why not (`named` as given)."""
    try:
        mine = get_voice(who, voice_id)
    except NotVisible:
        raise serializers.ValidationError({"voice": [f"There is no voice {named!r} of yours."]}) from None
    if mine.status == Voice.Status.PENDING:
        raise VoiceNotReady(
            f"The voice {named!r} is still being encoded from its audio sample by a worker; try again in a few seconds."
        )
    if mine.status == Voice.Status.FAILED:
        raise serializers.ValidationError({"voice": [f"The voice {named!r} could not be made: {mine.error}"]})


def instruction_cues(engine: str, instructions: str) -> tuple[list[str], dict[str, str]]:
    """The cues `instructions` put at the start of the input on `engine`, and the response headers that say what
    was applied and what was ignored (never nothing, when there were instructions)."""
    if not instructions.strip():
        return [], {}
    found = cues_for_instructions(engine, instructions)
    if found is None:
        return [], {"X-Instructions-Ignored": f"The {engine} engine cannot act on instructions."}
    cues, rest = found
    if not cues:
        message = f"None of the words the {engine} engine acts on are in the instructions (README: instructions)."
        return [], {"X-Instructions-Ignored": message}
    headers = {"X-Instructions-Applied": json.dumps(cues)}  # JSON escapes what a header cannot carry (♪ is \u266a)
    if re.search(r"\w", rest):
        headers["X-Instructions-Ignored"] = "Only the words that ask for a cue were acted on; the rest was ignored."
    return cues, headers


def wait_for(job: Job, timeout_s: float) -> Job:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while job.status in Job.ACTIVE:
        if time.monotonic() >= deadline:
            raise SpeechTimeout(
                f"Job {job.id} is still {job.status} after {timeout_s:g} s (BARK_SPEECH_TIMEOUT); it keeps going: "
                f"GET /api/bark/jobs/{job.id} and download its audio when it completes."
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
        job.refresh_from_db()
    return job


class SpeechView(APIView):
    throttle_classes = [SubmitRateThrottle]

    @extend_schema(
        tags=["openai"],
        operation_id="openai_speech",
        summary="OpenAI-compatible text to speech",
        request=SpeechRequestSerializer,
        responses={
            **{
                (200, content_type): OpenApiResponse(
                    OpenApiTypes.BINARY,
                    description=f"The audio as {name}" + (" (raw s16le mono, 24 kHz)." if name == "pcm" else "."),
                )
                for name, (content_type, _) in FORMATS.items()
            },
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description='stream_format "sse": speech.audio.delta events, then speech.audio.done with usage.',
            ),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="OpenAI-shaped error (unknown model/voice, …)."),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="Missing or wrong key."),
            409: OpenApiResponse(
                OpenApiTypes.OBJECT, description="The job was cancelled, or the voice is still being encoded."
            ),
            413: OpenApiResponse(OpenApiTypes.OBJECT, description="The body exceeds BARK_MAX_BODY_BYTES."),
            415: OpenApiResponse(OpenApiTypes.OBJECT, description="The body is not JSON."),
            429: OpenApiResponse(OpenApiTypes.OBJECT, description="Rate limit or full queue; see Retry-After."),
            500: OpenApiResponse(OpenApiTypes.OBJECT, description="The job failed; the message says why."),
            503: OpenApiResponse(OpenApiTypes.OBJECT, description="The model's engine cannot run here (the reason)."),
            504: OpenApiResponse(OpenApiTypes.OBJECT, description="Not finished within BARK_SPEECH_TIMEOUT."),
        },
    )
    def post(self, request: Request) -> HttpResponseBase:
        serializer = SpeechRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        engine, voice = resolve(data["model"], data["voice"], caller(request))
        cues, notes = instruction_cues(engine, data["instructions"])
        events = [{"type": "cue", "segment": 0, "cue": cue} for cue in reversed(cues)]  # each goes before the last
        job = submit_job(
            JobRequest(prompt=data["input"], engine=engine, voice=voice, dry_run=False, control_events=events),
            **submitter(request),
        )
        response = speech_response(job, data)
        for header, value in notes.items():
            response[header] = value
        return response


def speech_response(job: Job, data: dict[str, Any]) -> HttpResponseBase:
    """The audio of a submitted speech job: streamed as its segments finish (SSE or bytes), or whole when done."""
    no_workers = job.status == Job.Status.QUEUED and live_clusters() == 0
    if data["stream_format"] == "sse" or data["stream"]:
        if no_workers:  # run it beside the stream that follows it
            threading.Thread(target=_run_in_thread, args=(str(job.id),), daemon=True).start()
        if data["stream_format"] == "sse":
            return sse_response(job, data["response_format"], input_tokens=len(data["input"]))
        return streaming_response(job, data["response_format"])
    if no_workers:
        # Claims the job like a worker would; the task already sent finds it done and does nothing.
        pipeline.run_job(str(job.id))
        job.refresh_from_db()
    job = wait_for(job, settings.BARK_SPEECH_TIMEOUT)
    if job.status == Job.Status.CANCELLED:
        raise Conflict(f"Job {job.id} was cancelled before it finished.")
    if job.status != Job.Status.COMPLETED:
        raise SynthesisFailed(f"Job {job.id} failed: {job.error or job.status}")
    with job.audio.open("rb") as handle:
        wav = handle.read()
    try:
        audio = transcode(wav, data["response_format"], data["speed"])
    except FfmpegFailed as exc:
        raise SynthesisFailed(f"Job {job.id} completed but its audio could not be converted: {exc}") from None
    response = HttpResponse(audio, content_type=FORMATS[data["response_format"]][0])
    response["X-Job-Id"] = str(job.id)
    return response


class ModelListView(APIView):
    throttle_classes = [ReadRateThrottle]

    @extend_schema(
        tags=["openai"],
        operation_id="openai_models_list",
        summary="Models the speech endpoint accepts",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": models()})


class ModelDetailView(APIView):
    throttle_classes = [ReadRateThrottle]

    @extend_schema(
        tags=["openai"],
        operation_id="openai_model_retrieve",
        summary="One model",
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, model_id: str) -> Response:
        for entry in models():
            if entry["id"] == model_id:
                return Response(entry)
        for entry in models(runnable_only=False):
            if entry["id"] == model_id:
                reason = get_engine(entry["engine"]).health().reason
                raise NotFound(f"The model {model_id!r} cannot run here: {reason}")
        raise NotFound(f"There is no model {model_id!r}.")


def _run_in_thread(job_id: str) -> None:
    try:
        pipeline.run_job(job_id)
    finally:
        connection.close()  # this thread's own database connection
