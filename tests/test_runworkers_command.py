"""`manage.py runworkers` with real django-q2 clusters, once per broker (the database, Redis): after the whole
cluster is SIGKILLed every accepted job completes exactly once; then a stop signal to every process (Ctrl-C's
SIGINT with one broker, systemd's SIGTERM with the other) stops it within 10 s and hands the running job back.
SIGTERM to the main process alone is what bin/serve sends (tests/test_serve_script.py). One test per broker,
because each cluster start costs seconds."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from tests import event_log
from tests.processes import drop_redis_keys, redis_broker_env, service_env, start, submit_jobs, wait_for_text

pytestmark = pytest.mark.live

READY = "Workers running"
# Long enough (about a minute of speech) that Piper is still on it, on a quiet machine, when the test kills or stops.
LONG = " ".join(f"This is sentence {n} of a text long enough to keep a worker busy for a while." for n in range(16))


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return service_env(
        tmp_path,
        BARK_HEARTBEAT_S="1",  # requeue after 4 s of silence, sweep every second
        BARK_MAX_CONCURRENCY="1",  # one job running, the others prefetched behind it
        BARK_LOG_HOOK="tests.event_log.record",
        BARK_TEST_EVENT_LOG=str(tmp_path / "events.jsonl"),
        **extra,
    )


def start_workers(env: dict[str, str], log: Path) -> subprocess.Popen:
    process = start([sys.executable, "manage.py", "runworkers"], env, log)
    wait_for_text(log, READY, process)
    return process


def rows(env: dict[str, str], ids: list[str]) -> dict[str, dict]:
    with sqlite3.connect(env["BARK_SQLITE_PATH"], timeout=20) as db:
        db.row_factory = sqlite3.Row
        found = db.execute(f"SELECT * FROM synthesis_job WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()  # noqa: S608
    return {row["id"]: dict(row) for row in found}


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


def locked_broker_rows(env: dict[str, str]) -> int:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(env["BARK_SQLITE_PATH"], timeout=20) as db:
        return db.execute("SELECT count(*) FROM django_q_ormq WHERE lock > ?", [now]).fetchone()[0]


def seconds_between(stamp: str, moment: float) -> float:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp() - moment


def kill_everything(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


# Ctrl-C in a terminal sends SIGINT to the foreground process group; systemd (KillMode=control-group) SIGTERM.
STOPS = {"database": signal.SIGINT, "redis": signal.SIGTERM}


@pytest.mark.parametrize("broker", ["database", "redis"])
def test_after_a_crash_every_job_completes_once_and_a_stop_hands_the_running_job_back(tmp_path: Path, broker: str):
    extra = redis_broker_env() if broker == "redis" else {}
    env = worker_env(tmp_path, **extra)
    first = start_workers(env, tmp_path / "workers-1.log")
    second = None
    try:
        running, *queued = ids = submit_jobs(env, [LONG, "The second job.", "The third job."])
        wait_until(lambda: rows(env, ids)[running]["status"] == "running", 60, "the first job runs")
        if broker == "database":  # the cluster prefetched both queued tasks: their rows stay locked for an hour
            wait_until(lambda: locked_broker_rows(env) >= 3, 20, "all three tasks are locked by the cluster")
        time.sleep(1.5)  # a heartbeat or two, as in life
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.time()
        first.wait(timeout=15)
        assert {row["status"] for row in rows(env, queued).values()} == {"queued"}

        second = start_workers(env, tmp_path / "workers-2.log")
        ready_at = time.time()
        wait_until(lambda: all(r["status"] == "completed" for r in rows(env, ids).values()), 150, "all complete")
        final = rows(env, ids)

        [last] = submit_jobs(env, [LONG])
        wait_until(lambda: rows(env, [last])[last]["segments_done"] >= 1, 90, "the last job has stored a segment")
        partial = tmp_path / "outputs" / "jobs" / str(uuid.UUID(last))
        assert any(partial.rglob("*.wav")), "a partial file exists before the stop"
        pids = [process.pid for process in psutil.Process(second.pid).children(recursive=True)]
        sent_at = time.monotonic()
        os.killpg(second.pid, STOPS[broker])
        second.wait(timeout=30)
        stopped_in = time.monotonic() - sent_at
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                kill_everything(process)
        if broker == "redis":
            drop_redis_keys(env["BARK_QUEUE_NAME"])

    starts = [seconds_between(final[job]["started_at"], ready_at) for job in queued]
    rerun = seconds_between(final[running]["started_at"], killed_at)
    print(f"\n[{broker}] queued jobs started {starts[0]:.1f} s and {starts[1]:.1f} s after the workers came back;")
    print(f"[{broker}] the killed job ran again {rerun:.1f} s after the kill (BARK_HEARTBEAT_S=1)")
    print(f"[{broker}] stopped by {STOPS[broker].name} in {stopped_in:.1f} s")
    assert max(starts) < 60, "a queued job waited for a task held by the dead cluster"
    assert final[running]["attempts"] == 2 and [final[job]["attempts"] for job in queued] == [1, 1]
    events = event_log.read(env["BARK_TEST_EVENT_LOG"])
    completed = sorted(e["job_id"].replace("-", "") for e in events if e["event"] == "completed")
    assert completed == sorted(ids), "each job completed exactly once"
    for job in ids:
        assert (tmp_path / "outputs" / final[job]["audio"]).stat().st_size > 1000

    assert stopped_in < 10 and second.returncode == 0
    assert not [pid for pid in pids if psutil.pid_exists(pid)], "a process outlived the stop"
    row = rows(env, [last])[last]
    assert (row["status"], row["attempts"], row["segments_done"]) == ("queued", 0, 0), "handed back at once"
    assert not partial.exists() or not any(partial.rglob("*")), "its partial files were removed"
    assert "handed back to the queue" in (tmp_path / "workers-2.log").read_text()


def test_a_worker_stuck_in_an_engine_call_is_killed_at_the_stop_and_its_job_requeued_at_once(tmp_path: Path):
    # The first segment's synthesis does not return for minutes and defers stop signals meanwhile, as a hung driver
    # call does; the worker's heartbeat thread goes on beating, so the heartbeat rule would never requeue it.
    env = worker_env(tmp_path, BARK_FAULT_INJECTION="piper:synthesize:stall:1")
    log = tmp_path / "workers.log"
    process = start_workers(env, log)
    try:
        [job] = submit_jobs(env, [LONG])
        wait_for_text(log, "stage stalls for", process)  # inside the stalled call
        pids = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
        sent_at = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        stopped_in = time.monotonic() - sent_at
        row = rows(env, [job])[job]  # read at once: nothing else could have requeued it meanwhile
    finally:
        if process.poll() is None:
            kill_everything(process)

    assert stopped_in < 10 and process.returncode == 0, f"stopped in {stopped_in:.1f} s"
    assert not [pid for pid in pids if psutil.pid_exists(pid)], "a process outlived the stop"
    assert (row["status"], row["attempts"], row["worker"]) == ("queued", 0, ""), "requeued at once, not counted"
    text = log.read_text()
    assert "did not stop in time" in text and "its worker was killed at a stop" in text
