"""A real django-q2 cluster picks up a job queued by `manage.py synthesize --enqueue` and completes it:
the ORM broker on a WAL-mode SQLite file, on_commit enqueueing, the claim, the artifact."""

import sqlite3
import sys
import time
from pathlib import Path

import pytest
from scipy.io import wavfile

from tests.processes import manage, service_env, start, stop

pytestmark = pytest.mark.live


def test_a_running_cluster_completes_an_enqueued_job(tmp_path: Path):
    env = service_env(tmp_path)
    worker = start([sys.executable, "manage.py", "qcluster"], env, tmp_path / "qcluster.log")
    try:
        out = manage("synthesize", "Hello from the worker.", "--engine", "piper", "--enqueue", env=env)
        job_id = out.split("Queued job ")[1].split(" ")[0]

        db = sqlite3.connect(env["BARK_SQLITE_PATH"])
        deadline = time.monotonic() + 90
        status, audio, error = "queued", "", ""
        while time.monotonic() < deadline and status in ("queued", "running"):
            time.sleep(0.5)
            status, audio, error = db.execute(
                "SELECT status, audio, error FROM synthesis_job WHERE id = ?", [job_id.replace("-", "")]
            ).fetchone()
        # --wait follows a queued job to its end and then copies its audio like a local run.
        waited = manage(
            "synthesize", "Wait for me.", "--engine", "piper", "--enqueue", "--wait", "--out", str(tmp_path / "w.wav"),
            env=env,
        )  # fmt: skip
    finally:
        stop(worker)

    assert status == "completed", error or (tmp_path / "qcluster.log").read_text()[-3000:]
    rate, samples = wavfile.read(tmp_path / "outputs" / audio)
    assert rate == 22050 and len(samples) > rate
    assert "Queued job " in waited and f"Wrote {tmp_path / 'w.wav'}" in waited
    assert wavfile.read(tmp_path / "w.wav")[0] == 22050
