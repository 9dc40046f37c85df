"""A real django-q2 cluster picks up a job queued by `manage.py synthesize --enqueue` and completes it:
the ORM broker on a WAL-mode SQLite file, on_commit enqueueing, the claim, the artifact."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.live


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "BARK_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "BARK_OUTPUT_ROOT": str(tmp_path / "outputs"),
        "BARK_CACHE_DIR": str(tmp_path / "cache"),
        "BARK_MAX_CONCURRENCY": "1",
    }
    env.pop("DATABASE_URL", None)
    manage("migrate", "--noinput", env=env)
    return env


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_running_cluster_completes_an_enqueued_job(service_env, tmp_path):
    log = (tmp_path / "qcluster.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=service_env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        out = manage("synthesize", "Hello from the worker.", "--engine", "piper", "--enqueue", env=service_env)
        job_id = out.split("Queued job ")[1].split(" ")[0]

        db = sqlite3.connect(service_env["BARK_SQLITE_PATH"])
        deadline = time.monotonic() + 90
        status = "queued"
        while time.monotonic() < deadline and status in ("queued", "running"):
            time.sleep(0.5)
            status, audio, error = db.execute(
                "SELECT status, audio, error FROM synthesis_job WHERE id = ?", [job_id.replace("-", "")]
            ).fetchone()
    finally:
        stop(worker)

    assert status == "completed", error or (tmp_path / "qcluster.log").read_text()[-3000:]
    rate, samples = wavfile.read(tmp_path / "outputs" / audio)
    assert rate == 22050 and len(samples) > rate


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the cluster and its workers; SIGKILL whatever is still there after a grace period."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
