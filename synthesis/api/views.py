"""The REST API's routes. Each view: an input serializer, one call into `synthesis.jobs.submit`, an output
serializer. Health and capabilities are public; the rest need a key, a session or an open API."""

from __future__ import annotations

from django.conf import settings
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from synthesis.api import health as checks
from synthesis.api.auth import api_is_open, caller, submitter
from synthesis.api.exceptions import Conflict
from synthesis.api.limits import ReadRateThrottle, SubmitRateThrottle
from synthesis.api.serializers import (
    ErrorSerializer,
    JobPageSerializer,
    JobSerializer,
    SubmissionSerializer,
    SynthesisRequestSerializer,
    errors,
)
from synthesis.engines import ENGINE_NAMES, cloning_engine
from synthesis.http.downloads import serve_artifact
from synthesis.http.streaming import STREAM_FORMATS, streaming_response
from synthesis.jobs import breaker, selectors
from synthesis.jobs.control import MODALITIES
from synthesis.jobs.submit import MAX_SEED, TEMPERATURE_RANGE, cancel_job, submit_job
from synthesis.jobs.voices import catalogue
from synthesis.media import video_options
from synthesis.models import Job

# What each artifact is served as (synthesis.downloads.content_type_for): audio, video, srt, vtt, metadata.
ARTIFACT_TYPES = ("audio/wav", "video/mp4", "application/x-subrip", "text/vtt", "application/json")

JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.CharField(
            help_text="ok, degraded (serving, but the cache, every engine or an engine's circuit breaker "
            "is failing) or error"
        ),
        "reasons": serializers.ListField(child=serializers.CharField(), help_text="why it is degraded"),
        "time": serializers.DateTimeField(),
        "version": serializers.CharField(),
        "checks": serializers.JSONField(help_text="database, queue, cache, engines"),
    },
)


class JobPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


@extend_schema(
    tags=["service"],
    auth=[],
    operation_id="health",
    summary="Liveness and dependency checks",
    responses={
        200: HEALTH,
        503: OpenApiResponse(HEALTH, description="The database or the queue is down (same body, status 'error')."),
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request: Request) -> Response:
    database, queue, cache = checks.check_database(), checks.check_queue(), checks.check_cache()
    engines = checks.check_engines()
    reasons = checks.degraded_reasons(cache, engines) if database["ok"] else []
    if not (database["ok"] and queue["ok"]):
        state = "error"
    elif reasons:
        state = "degraded"  # serving, but rate-limited routes or some synthesis will fail or wait
    else:
        state = "ok"
    body = {
        "status": state,
        "reasons": reasons,
        "time": timezone.now().isoformat(),
        "version": settings.SPECTACULAR_SETTINGS["VERSION"],
        "checks": {"database": database, "queue": queue, "cache": cache, "engines": engines},
    }
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE if state == "error" else status.HTTP_200_OK)


@extend_schema(
    tags=["service"],
    auth=[],
    operation_id="capabilities",
    summary="What this server can do",
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def capabilities(request: Request) -> Response:
    engines = checks.check_engines()
    voices = catalogue()
    runnable = breaker.default_engine() if any(engine["ok"] for engine in engines) else None
    video = video_options.capabilities()
    cloner = cloning_engine()
    return Response(
        {
            "modalities": list(MODALITIES),
            "video_presets": video["video_presets"],
            "audio_bitrates": video["audio_bitrates"],
            "codecs": video["codecs"],
            "notes": [
                "Bark generates about 13 s per segment; longer text is split at sentences and joined.",
                "dry_run defaults to true when no engine can run; a real submission then gets 503.",
                "Jobs with a seed are deduplicated: identical requests reuse a completed job's files.",
                "OpenAI-compatible speech: POST /v1/audio/speech; models: GET /v1/models.",
            ],
            "default_engine": runnable,
            "dry_run_default": runnable is None,
            "engines": engines,
            "voices": {
                "count": len(voices),
                "by_engine": {name: sum(v["engine"] == name for v in voices) for name in ENGINE_NAMES},
                "languages": sorted({v["language"] for v in voices}),
                "examples": [voices[0]["id"], voices[-1]["id"]],
            },
            "video": {"default_preset": video["default_video_preset"], "bounds": video["video_bounds"]},
            # How an uploaded clip becomes a voice here (POST /api/voices), and whether it needs its transcript.
            "cloning": {"engine": cloner.name, **cloner.cloning_method().as_dict()},
            "limits": {
                "max_prompt_chars": settings.BARK_MAX_PROMPT_CHARS,
                "max_body_bytes": settings.BARK_MAX_BODY_BYTES,
                "rate_limit_per_min": settings.BARK_RATE_LIMIT_PER_MIN,
                "max_queue_size": settings.BARK_MAX_QUEUE_SIZE,
                "max_concurrency": settings.BARK_MAX_CONCURRENCY,
                "temperature": list(TEMPERATURE_RANGE),
                "seed": [0, MAX_SEED],
            },
            "auth": {
                "mode": "open" if api_is_open() else "key",
                "headers": ["X-API-Key: <key>", "Authorization: Bearer <key>"],
            },
        }
    )


@extend_schema(
    tags=["jobs"],
    operation_id="synthesize",
    summary="Plan (dry run) or queue a synthesis job",
    request=SynthesisRequestSerializer,
    responses={
        201: OpenApiResponse(SubmissionSerializer, description="Queued for a worker."),
        200: OpenApiResponse(SubmissionSerializer, description="Planned (dry run), or completed by reusing a job."),
        **errors(400, 401, 413, 415, 429, 503),
    },
)
@api_view(["POST"])
@throttle_classes([SubmitRateThrottle])
def synthesize(request: Request) -> Response:
    serializer = SynthesisRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    job = submit_job(serializer.job_request(), **submitter(request))
    context = {"request": request, "warnings": serializer.warnings}
    return Response(
        SubmissionSerializer(job, context=context).data,
        status=status.HTTP_201_CREATED if job.status == Job.Status.QUEUED else status.HTTP_200_OK,
        headers={"Location": request.build_absolute_uri(reverse("api-job", args=[job.id]))},
    )


@extend_schema(
    tags=["jobs"],
    operation_id="jobs_list",
    summary="The caller's jobs, newest first",
    parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=Job.Status.values, description="Only jobs in this status."),
        OpenApiParameter(
            "limit", {"type": "integer", "minimum": 1}, description="Page size (default 20, at most 100)."
        ),
        OpenApiParameter("offset", {"type": "integer", "minimum": 0}, description="Jobs to skip."),
    ],
    responses={200: JobPageSerializer, **errors(400, 401, 429)},
)
@api_view(["GET"])
@throttle_classes([ReadRateThrottle])
def job_list(request: Request) -> Response:
    wanted = request.query_params.get("status")
    if wanted is not None and wanted not in Job.Status.values:
        raise ValidationError({"status": [f"Unknown status {wanted!r}; use one of {', '.join(Job.Status.values)}."]})
    for name, least in (("limit", 1), ("offset", 0)):  # LimitOffsetPagination would quietly ignore a bad value
        value = request.query_params.get(name)
        if value is not None and not (value.isdigit() and int(value) >= least):
            raise ValidationError({name: [f"{name} must be a whole number of {least} or more, not {value!r}."]})
    jobs = selectors.job_list(caller(request), wanted)
    paginator = JobPagination()
    page = paginator.paginate_queryset(jobs, request)
    return paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)


@extend_schema(
    tags=["jobs"],
    operation_id="job_retrieve",
    summary="One job",
    parameters=[JOB_ID],
    responses={200: JobSerializer, **errors(401, 404)},
)
@api_view(["GET"])
@throttle_classes([ReadRateThrottle])
def job_detail(request: Request, job_id: str) -> Response:
    return Response(JobSerializer(_visible_job(request, job_id), context={"request": request}).data)


@extend_schema(
    tags=["jobs"],
    operation_id="job_artifact",
    summary="Download one artifact",
    parameters=[
        JOB_ID,
        OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(Job.ARTIFACT_FIELDS)),
    ],
    responses={
        **{
            (code, content_type): OpenApiResponse(
                OpenApiTypes.OBJECT if content_type == "application/json" else OpenApiTypes.BINARY,
                description=description + " The content type is the artifact's own (metadata is JSON).",
            )
            for code, description in (
                (200, "The whole file."),
                (206, "The single byte range asked for with a Range header."),
            )
            for content_type in ARTIFACT_TYPES
        },
        416: OpenApiResponse(ErrorSerializer, description="The Range starts past the end of the file."),
        **errors(401, 404),
    },
)
@api_view(["GET"])
@throttle_classes([ReadRateThrottle])
def job_artifact(request: Request, job_id: str, name: str) -> HttpResponseBase:
    file = selectors.get_artifact(_visible_job(request, job_id), name)
    return serve_artifact(request._request, file)


@extend_schema(
    tags=["jobs"],
    operation_id="job_cancel",
    summary="Cancel a queued or running job",
    request=None,
    parameters=[JOB_ID],
    responses={200: JobSerializer, **errors(401, 404, 409)},
)
@api_view(["POST"])
@throttle_classes([ReadRateThrottle])
def job_cancel(request: Request, job_id: str) -> Response:
    job = _visible_job(request, job_id)
    if job.status != Job.Status.CANCELLED and not cancel_job(job):  # cancelling twice is not an error
        job.refresh_from_db()
        raise Conflict(f"Job {job.id} is {job.status}; only queued or running jobs can be cancelled.")
    job.refresh_from_db()
    return Response(JobSerializer(job, context={"request": request}).data)


@extend_schema(
    tags=["jobs"],
    operation_id="job_stream",
    summary="Stream a job's audio as its segments finish",
    description="Chunked audio that starts after the first segment, not the whole text: a WAV with an open-ended "
    "header, raw 16-bit 24 kHz PCM, or MP3 frames. Ends when the job ends (early if it fails or is cancelled).",
    parameters=[JOB_ID, OpenApiParameter("format", OpenApiTypes.STR, enum=list(STREAM_FORMATS), default="wav")],
    responses={
        **{(200, content_type): OpenApiResponse(OpenApiTypes.BINARY) for content_type in STREAM_FORMATS.values()},
        409: OpenApiResponse(ErrorSerializer, description="A dry run (no audio), or a job whose files were purged."),
        **errors(400, 401, 404),
    },
)
@api_view(["GET"])
@throttle_classes([ReadRateThrottle])
def job_stream(request: Request, job_id: str) -> HttpResponseBase:
    job = _visible_job(request, job_id)
    fmt = request.query_params.get("format", "wav")
    if fmt not in STREAM_FORMATS:
        raise ValidationError({"format": [f"Streams come as {', '.join(STREAM_FORMATS)}; not {fmt!r}."]})
    if job.status == Job.Status.PLANNED:
        raise Conflict(f"Job {job.id} is a dry run: there is no audio to stream.")
    if job.status == Job.Status.COMPLETED and not (job.audio and job.audio.storage.exists(job.audio.name or "")):
        raise Conflict(f"Job {job.id} has no audio any more (its files were purged).")
    return streaming_response(job, fmt)


def _visible_job(request: Request, job_id: str) -> Job:
    """The job, or the same 404 whether it does not exist or belongs to someone else."""
    return selectors.get_job(caller(request), job_id)
