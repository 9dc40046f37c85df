"""The API as it is deployed: gunicorn + a django-q2 cluster on a temporary SQLite file. Runs the first
bring-up commands (health, capabilities, dry run), then what a program does: create a key, submit text,
poll the job, download a valid WAV; and OpenAI's client fetches speech as mp3."""

import io
import re
import time
from pathlib import Path

import openai
import pytest
from scipy.io import wavfile

from tests.media_decode import decode
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
