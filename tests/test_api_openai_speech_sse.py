"""POST /v1/audio/speech with `stream_format: "sse"`: OpenAI's speech.audio.delta events as segments finish, for every
engine, then speech.audio.done with the usage the README defines, or an OpenAI error event when the job does not
finish; OpenAI's Python client reads the stream."""

import base64
import io
import json

import httpx2
import numpy as np
import openai
import pytest
from django.core.wsgi import get_wsgi_application
from scipy.io import wavfile

from synthesis.api import openai as speech_api
from synthesis.api.openai import wait_for
from synthesis.jobs.pipeline import run_claimed_job
from synthesis.jobs.submit import cancel_job
from synthesis.models import Job
from tests.api_helpers import keyed_client, new_key
from tests.test_api_job_stream import LONG_TEXT, parse_stream_wav

URL = "/v1/audio/speech"


def sse_events(body: bytes) -> list[dict]:
    """Each `data:` event of an SSE body, decoded; every event is one data line and a blank line."""
    blocks = body.decode().split("\n\n")
    assert blocks[-1] == "" and all(block.startswith("data: ") and "\n" not in block for block in blocks[:-1])
    return [json.loads(block.removeprefix("data: ")) for block in blocks[:-1]]


def joined_audio(events: list[dict]) -> bytes:
    return b"".join(base64.b64decode(event["audio"]) for event in events if event["type"] == "speech.audio.delta")


def stored_wav(job: Job) -> np.ndarray:
    with job.audio.open("rb") as handle:
        return wavfile.read(io.BytesIO(handle.read()))[1]


@pytest.mark.parametrize("engine", ["piper", "bark"])
def test_each_engine_streams_deltas_that_join_into_the_jobs_audio_then_done_with_the_usage(
    transactional_db, tiny_bark, engine
):
    api, _ = keyed_client()
    text = LONG_TEXT  # two segments
    body = {"model": engine, "input": text, "voice": "alloy", "response_format": "wav", "stream_format": "sse"}

    response = api.post(URL, body, format="json")

    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-store"
    events = sse_events(b"".join(response.streaming_content))
    job = wait_for(Job.objects.get(pk=response["X-Job-Id"]), timeout_s=120)
    assert job.status == Job.Status.COMPLETED and job.engine == engine
    assert job.segments_total == 2
    assert [event["type"] for event in events] == ["speech.audio.delta", "speech.audio.delta", "speech.audio.done"]
    rate, samples = parse_stream_wav(joined_audio(events))
    assert rate == job.sample_rate and np.array_equal(samples, stored_wav(job)), "the deltas are the final WAV"
    output_tokens = round(len(samples) / rate * 50)
    assert events[-1] == {
        "type": "speech.audio.done",
        "usage": {
            "input_tokens": len(text.strip()),
            "output_tokens": output_tokens,
            "total_tokens": len(text.strip()) + output_tokens,
        },
    }


def test_the_first_delta_arrives_when_the_first_segment_is_done_not_the_whole_job(db, monkeypatch):
    monkeypatch.setattr(speech_api, "live_clusters", lambda: 1)  # a worker exists: the test plays it
    api, _ = keyed_client()
    body = {"model": "piper", "input": LONG_TEXT, "voice": "alloy", "response_format": "pcm", "stream_format": "sse"}
    response = api.post(URL, body, format="json")
    stream = iter(response.streaming_content)
    job = Job.objects.get(pk=response["X-Job-Id"])
    seen = []

    def after_segment(done: int, total: int) -> None:
        if done == 1:  # the worker has just recorded its first segment; the rest are not made yet
            seen.append((next(stream), Job.objects.get(pk=job.pk).status, total))

    assert job.claim()
    run_claimed_job(job, on_progress=after_segment)

    first, status_then, total = seen[0]
    (delta,) = sse_events(first)
    assert status_then == Job.Status.RUNNING and total == 2 and delta["type"] == "speech.audio.delta"
    assert len(base64.b64decode(delta["audio"])) > 2 * 24_000  # a whole sentence of 24 kHz pcm, and its pause
    rest = sse_events(b"".join(stream))
    assert [event["type"] for event in rest] == ["speech.audio.delta", "speech.audio.done"]


def test_a_job_that_fails_ends_the_stream_with_an_openai_error_event_and_no_done(transactional_db, monkeypatch):
    from synthesis.engines import EngineFailed
    from synthesis.engines.piper.engine import PiperEngine

    def broken(self, segments, options, on_segment=None):
        raise EngineFailed("the voice broke")

    monkeypatch.setattr(PiperEngine, "synthesize", broken)
    api, _ = keyed_client()
    body = {"model": "piper", "input": "Hi.", "voice": "alloy", "response_format": "mp3", "stream_format": "sse"}

    response = api.post(URL, body, format="json")

    events = sse_events(b"".join(response.streaming_content))
    job = Job.objects.get(pk=response["X-Job-Id"])
    assert response.status_code == 200 and job.status == Job.Status.FAILED
    assert events == [
        {
            "type": "error",
            "error": {
                "message": f"Job {job.id} failed: the voice broke",
                "type": "server_error",
                "param": None,
                "code": "synthesis_failed",
            },
        }
    ]


def test_a_job_cancelled_mid_stream_ends_it_after_the_audio_sent_with_an_error_event(db, monkeypatch):
    monkeypatch.setattr(speech_api, "live_clusters", lambda: 1)
    api, _ = keyed_client()
    body = {"model": "piper", "input": LONG_TEXT, "voice": "alloy", "response_format": "wav", "stream_format": "sse"}
    response = api.post(URL, body, format="json")
    stream = iter(response.streaming_content)
    job = Job.objects.get(pk=response["X-Job-Id"])
    first = []

    def after_segment(done: int, total: int) -> None:
        if done == 1:
            first.append(next(stream))
            cancel_job(Job.objects.get(pk=job.pk))

    assert job.claim()
    run_claimed_job(job, on_progress=after_segment)
    events = sse_events(first[0] + b"".join(stream))

    assert [event["type"] for event in events] == ["speech.audio.delta", "error"]
    assert (
        events[1]["error"]["code"] == "conflict" and "was cancelled before it finished" in events[1]["error"]["message"]
    )
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def test_openais_python_client_reads_the_events_with_its_own_sse_decoder(transactional_db):
    _, raw = new_key()
    transport = httpx2.WSGITransport(app=get_wsgi_application())
    sdk = openai.OpenAI(
        base_url="http://localhost/v1", api_key=raw, http_client=httpx2.Client(transport=transport), max_retries=0
    )

    with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="coral",
        input="Hello from the stream.",
        response_format="pcm",
        stream_format="sse",
    ) as response:
        events = list(openai.Stream(cast_to=object, response=response.http_response, client=sdk))

    audio = joined_audio(events)
    job = Job.objects.get(pk=response.headers["X-Job-Id"])
    assert response.headers["Content-Type"] == "text/event-stream"
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] == 22
    assert len(audio) / 2 / 24_000 == pytest.approx(wait_for(job, timeout_s=60).duration_s, abs=0.01)
    assert events[-1]["usage"]["output_tokens"] == round(len(audio) / 2 / 24_000 * 50)
