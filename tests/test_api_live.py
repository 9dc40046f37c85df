"""The API as it is deployed: gunicorn + a django-q2 cluster on a temporary SQLite file. Runs the first
bring-up commands (health, capabilities, dry run), then what a program does: create a key, submit text,
poll the job, download a valid WAV; and OpenAI's client fetches speech as mp3."""

import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from scipy.io import wavfile

from tests.media_decode import decode
from tests.processes import ROOT, service_env, start, stop

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(method: str, url: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict | bytes]:
    headers = {"Content-Type": "application/json"} | ({"X-API-Key": key} if key else {})
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw


@pytest.fixture
def server(tmp_path: Path):
    """Base URL of a fresh gunicorn + qcluster, and the environment they run with."""
    # Piper speaks; Bark's weights are not on this machine.
    env = service_env(tmp_path, BARK_MODELS_AVAILABLE="false")
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "barksite.wsgi", "--bind", f"127.0.0.1:{port}"]
    processes = [
        start([*gunicorn, "--workers", "2", "--worker-class", "gthread", "--threads", "4"], env, tmp_path / "web.log"),
        start([sys.executable, "manage.py", "qcluster"], env, tmp_path / "qcluster.log"),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call("GET", f"{base}/api/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()[-3000:]
            time.sleep(0.3)
        yield base, env
    finally:
        for process in processes:
            stop(process)


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
    created = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "live test"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    key = next(line.strip() for line in created.stdout.splitlines() if line.startswith("    "))
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
