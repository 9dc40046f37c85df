"""`manage.py qcluster` with Bark able to run starts one Bark runner, warm before any job, and two workers' Bark jobs
complete through it: one process holds the model, the workers hold none."""

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.processes import manage, service_env, start, stop

pytestmark = pytest.mark.live


def runner_state(env: dict[str, str]) -> str:
    code = "from synthesis.engines.bark.protocol import runner_state; print((runner_state() or {}).get('state'))"
    return manage("shell", "-c", code, env=env).strip().splitlines()[-1]  # after the shell's auto-import notice


def test_a_cluster_runs_bark_jobs_of_two_workers_through_one_warm_runner(tmp_path: Path, tiny_bark_dir: Path):
    env = service_env(tmp_path, BARK_MODEL=str(tiny_bark_dir), BARK_MAX_CONCURRENCY="2")
    cluster = start([sys.executable, "manage.py", "qcluster"], env, tmp_path / "qcluster.log")
    try:
        # The runner listens once loaded and warmed up (seconds on an idle machine; minutes on a loaded one).
        socket_path = Path(tempfile.gettempdir()) / f"barksite-bark-{cluster.pid}.sock"
        deadline = time.monotonic() + 600
        while not socket_path.exists():
            assert time.monotonic() < deadline and cluster.poll() is None, (tmp_path / "qcluster.log").read_text()
            time.sleep(0.5)
        state = runner_state(env)
        runners = [
            child
            for child in psutil.Process(cluster.pid).children(recursive=True)
            if "engine_runner" in " ".join(child.cmdline())
        ]
        job_ids = [
            manage("synthesize", text, "--engine", "bark", "--enqueue", env=env).split("Queued job ")[1].split(" ")[0]
            for text in ("The first job speaks.", "The second job speaks too.")
        ]
        db = sqlite3.connect(env["BARK_SQLITE_PATH"])
        rows: list[tuple] = []
        while time.monotonic() < deadline:
            rows = [
                db.execute(
                    "SELECT status, error, device FROM synthesis_job WHERE id = ?", [job.replace("-", "")]
                ).fetchone()
                for job in job_ids
            ]
            if all(row[0] not in ("queued", "running") for row in rows):
                break
            time.sleep(0.5)
    finally:
        stop(cluster)

    assert state == "ready" and len(runners) == 1
    assert rows == [("completed", "", "cpu")] * 2, (tmp_path / "qcluster.log").read_text()[-3000:]
    assert not any(runner.is_running() for runner in runners), "the runner stops with the cluster"
    # The group's SIGTERM stops the runner too: an expected exit, not a crash to restart it for.
    assert "the engine runner exited" not in (tmp_path / "qcluster.log").read_text()
