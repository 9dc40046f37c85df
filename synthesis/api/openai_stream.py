"""`stream_format: "sse"` on /v1/audio/speech: a job's audio as OpenAI's server-sent events, while it runs.

Each finished segment is one `{"type": "speech.audio.delta", "audio": "<base64>"}` event (that segment's bytes in the
response format, so the deltas joined are one stream of it, as with `stream: true`), and the last event is
`{"type": "speech.audio.done", "usage": {"input_tokens", "output_tokens", "total_tokens"}}`. barksite counts usage
in its own units, as the README states: an input token per character of `input` as spoken (the whitespace around it
trimmed), an output token per 20 ms of audio sent (50 a second, about Bark's 49.9 semantic tokens a second; pauses
included, rounded to the nearest), and their sum. A job that fails, is cancelled or deleted, or outlasts
BARK_JOB_TIMEOUT once the response has begun (its status is sent) ends the stream with
`{"type": "error", "error": {...}}` in OpenAI's error shape instead of the done event.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse

from synthesis.api.errors import openai_error
from synthesis.http.streaming import Encoder, follow
from synthesis.media.ffmpeg import FfmpegFailed
from synthesis.models import Job

OUTPUT_TOKENS_PER_S = 50


def sse_response(job: Job, fmt: str, input_tokens: int) -> StreamingHttpResponse:
    events = speech_events(str(job.id), fmt, input_tokens, settings.BARK_JOB_TIMEOUT)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["X-Job-Id"] = str(job.id)
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # a proxy such as nginx would otherwise hold the events back
    return response


def speech_events(job_id: str, fmt: str, input_tokens: int, timeout_s: float) -> Iterator[bytes]:
    """The SSE bytes of job `job_id`'s audio in `fmt` (wav, pcm or mp3), each delta as soon as its segment exists."""
    encoder = Encoder(fmt)
    seconds = 0.0
    try:
        for samples, rate in follow(job_id, timeout_s):
            seconds += len(samples) / rate
            chunk = encoder.encode(samples, rate)
            if chunk:
                yield event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")})
    except FfmpegFailed as exc:  # mid-stream there is no status left to send: the error event says it
        yield event({"type": "error", **openai_error(500, f"Job {job_id}: {exc}", "encoding_failed")})
        return
    unfinished = why_unfinished(job_id, timeout_s)
    if unfinished is not None:
        yield event({"type": "error", **openai_error(*unfinished)})
        return
    output_tokens = round(seconds * OUTPUT_TOKENS_PER_S)
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}
    yield event({"type": "speech.audio.done", "usage": usage})


def why_unfinished(job_id: str, timeout_s: float) -> tuple[int, str, str] | None:
    """None when all of the job's audio was sent, else (status, message, code) of the error that says why not. The
    stream ends with the last segment, so a job may still be joining its segments into the final file: that counts."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return 404, f"Job {job_id} was deleted while its audio was being sent.", "not_found"
    all_sent = job.status in Job.ACTIVE and job.segments_total and job.segments_done >= job.segments_total
    if job.status == Job.Status.COMPLETED or all_sent:
        return None
    if job.status == Job.Status.CANCELLED:
        return 409, f"Job {job.id} was cancelled before it finished.", "conflict"
    if job.status == Job.Status.FAILED:
        return 500, f"Job {job.id} failed: {job.error or 'no reason recorded'}", "synthesis_failed"
    return 504, (
        f"Job {job.id} is still {job.status} after {timeout_s:g} s (BARK_JOB_TIMEOUT); it keeps going: "
        f"GET /api/bark/jobs/{job.id} and download its audio when it completes."
    ), "timeout"  # fmt: skip


def event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()
