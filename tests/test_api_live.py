"""The API as it is deployed: gunicorn + a django-q2 cluster on a temporary SQLite file. Runs the first
bring-up commands (health, capabilities, dry run), then what a program does: create a key, submit text,
poll the job, download a valid WAV; and OpenAI's client fetches speech as mp3 and as server-sent events. With Bark
(the tiny checkpoint, in the cluster's Bark runner), OpenAI's client makes a consent and a voice, waits while a
worker encodes it, and streams speech in it."""

import base64
import io
import re
import time
from pathlib import Path

import openai
import pytest
from scipy.io import wavfile

from tests.media_decode import decode, tone
from tests.processes import call, create_api_key, service_env, web_and_worker

pytestmark = pytest.mark.live


@pytest.fixture
def server(tmp_path: Path):
    """Base URL of a fresh gunicorn + qcluster, and the environment they run with."""
    # Piper speaks; Bark's weights are not on this machine.
    env = service_env(tmp_path, BARK_MODELS_AVAILABLE="false")
    with web_and_worker(env, tmp_path) as base:
        yield base, env


def test_bring_up_then_key_submit_poll_download_and_openai_mp3(server, tmp_path):
    base, env = server

    # The first bring-up: health, capabilities, a dry run (the API is open: no key exists yet).
    status, health = call("GET", f"{base}/api/health")
    assert status == 200 and health["status"] == "ok" and health["checks"]["database"]["ok"]
    status, capabilities = call("GET", f"{base}/api/capabilities")
    assert status == 200 and capabilities["auth"]["mode"] == "open" and "4k" in capabilities["video_presets"]
    status, planned = call("POST", f"{base}/api/bark/synthesize", {"prompt": "hello", "dry_run": True})
    assert status == 200 and planned["status"] == "planned" and planned["plan"]["engine"] == "piper"
    # The docs page's Swagger UI comes from this server (drf-spectacular-sidecar), not a CDN.
    status, page = call("GET", f"{base}/api/docs")
    bundle = re.search(rb'src="(/static/[^"]+swagger-ui-bundle\.js)"', page)[1].decode()
    assert status == 200 and call("GET", f"{base}{bundle}")[0] == 200

    # A key closes the API.
    key = create_api_key(env, "live test")
    assert call("GET", f"{base}/api/bark/jobs")[0] == 401

    # Submit, poll, download.
    status, job = call(
        "POST", f"{base}/api/bark/synthesize", {"prompt": "Hello from the live test.", "engine": "piper"}, key
    )
    assert status == 201 and job["status"] == "queued"
    deadline = time.monotonic() + 90
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, (tmp_path / "qcluster.log").read_text()[-3000:]
        time.sleep(0.3)
        job = call("GET", f"{base}/api/bark/jobs/{job['job_id']}", key=key)[1]
    assert job["status"] == "completed", job["error"]
    status, wav = call("GET", job["artifacts"]["audio"], key=key)
    rate, samples = wavfile.read(io.BytesIO(wav))
    assert status == 200 and rate == 22050 and len(samples) / rate == pytest.approx(job["duration_s"], abs=0.01)

    # OpenAI's client, unchanged, against /v1 (the cluster runs this job too).
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, timeout=90, max_retries=0)
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello, OpenAI client.")
    assert speech.content[:3] == b"ID3" and len(decode(speech.content)) > 24000 * 0.5
    events = sse_speech(client, model="tts-1", voice="nova", input="Hello, events.", response_format="pcm")
    assert [event["type"] for event in events] == ["speech.audio.delta", "speech.audio.done"]
    assert len(audio_of(events)) / 2 / 24000 > 0.5 and events[-1]["usage"]["input_tokens"] == len("Hello, events.")


def sse_speech(client: openai.OpenAI, **request) -> list[dict]:
    """The events of one `stream_format: "sse"` speech request, read by OpenAI's client with its own decoder."""
    with client.audio.speech.with_streaming_response.create(**request, stream_format="sse") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        return list(openai.Stream(cast_to=object, response=response.http_response, client=client))


def audio_of(events: list[dict]) -> bytes:
    return b"".join(base64.b64decode(event["audio"]) for event in events if event["type"] == "speech.audio.delta")


def test_openais_client_makes_a_consent_and_a_voice_and_streams_speech_in_it_once_a_worker_encoded_it(
    tmp_path, tiny_bark_dir
):
    env = service_env(tmp_path, BARK_MODEL=str(tiny_bark_dir))
    key = create_api_key(env, "voices")
    with web_and_worker(env, tmp_path) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, timeout=120, max_retries=0)
        consent = client.audio.voice_consents.create(name="Jo", language="en-US", recording=("jo.ogg", tone("ogg")))
        voice = client.audio.voices.create(
            name="Jo's voice",
            consent=consent.id,
            audio_sample=("sample.mp4", tone("mp4"), "audio/mp4"),
            extra_body={"transcript": "A steady tone for my voice."},
        )
        with pytest.raises(openai.ConflictError, match="is still being encoded from its audio sample"):
            sse_speech(client, model="bark", voice={"id": voice.id}, input="Too soon.")
        # The same voice under /api/voices, polled there (reads have the larger rate budget).
        status_url = f"{base}/api/voices/custom/{voice.id.removeprefix('voice_')}"
        deadline = time.monotonic() + 300  # the runner loads and warms up first
        while (mine := call("GET", status_url, key=key)[1])["status"] == "pending":
            assert time.monotonic() < deadline, (tmp_path / "qcluster.log").read_text()[-3000:]
            time.sleep(0.5)
        events = sse_speech(client, model="bark", voice={"id": voice.id}, input="Hi, in my voice.")
        with pytest.raises(openai.ConflictError, match="delete them first"):
            client.audio.voice_consents.delete(consent.id)
        client.audio.voices.delete(voice.id)
        deleted = client.audio.voice_consents.delete(consent.id)
        _, voices = call("GET", f"{base}/api/voices", key=key)

    assert mine["status"] == "ready", mine
    assert [event["type"] for event in events] == ["speech.audio.delta", "speech.audio.done"]
    assert decode(audio_of(events)).size > 0  # mp3, the default response_format
    assert events[-1]["usage"]["input_tokens"] == len("Hi, in my voice.")
    assert deleted.deleted is True and voices["yours"] == []
