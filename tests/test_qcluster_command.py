"""`manage.py qcluster`, the command django-q2's documentation gives, is barksite's worker supervisor (as
`runworkers`): idle or with a job running, a SIGTERM or SIGINT to its whole process group (systemd's
KillMode=control-group, Ctrl-C) or to its main process alone stops every process within 10 s, without a traceback,
and the running job goes back to the queue at once: its attempt not counted, its partial files removed."""

import os
import signal
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.processes import start, submit_jobs, wait_for_text
from tests.test_runworkers_command import LONG, READY, kill_everything, rows, wait_until, worker_env

pytestmark = pytest.mark.live


def start_qcluster(env: dict[str, str], log: Path):
    process = start([sys.executable, "manage.py", "qcluster"], env, log)
    wait_for_text(log, READY, process)
    return process


def send(process, target: str, signum: signal.Signals) -> None:
    if target == "group":
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)


def stop_and_time(process, target: str, signum: signal.Signals) -> tuple[float, list[int]]:
    family = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    sent_at = time.monotonic()
    send(process, target, signum)
    process.wait(timeout=30)
    return time.monotonic() - sent_at, [pid for pid in family if psutil.pid_exists(pid)]


@pytest.mark.parametrize(
    ("target", "signum"),
    [("group", signal.SIGTERM), ("group", signal.SIGINT), ("main", signal.SIGTERM)],
    ids=["SIGTERM to the group", "SIGINT to the group", "SIGTERM to the main process"],
)
def test_a_stop_signal_stops_qcluster_within_10_s_and_hands_its_running_job_back(tmp_path, target, signum):
    env = worker_env(tmp_path)
    log = tmp_path / "qcluster.log"
    process = start_qcluster(env, log)
    try:
        [job] = submit_jobs(env, [LONG])
        wait_until(lambda: rows(env, [job])[job]["segments_done"] >= 1, 90, "the job has stored a segment")
        partial = tmp_path / "outputs" / "jobs" / str(uuid.UUID(job))
        assert any(partial.rglob("*.wav")), "a partial file exists before the stop"

        stopped_in, survivors = stop_and_time(process, target, signum)
    finally:
        if process.poll() is None:
            kill_everything(process)

    row = rows(env, [job])[job]
    assert stopped_in < 10 and process.returncode == 0, f"stopped in {stopped_in:.1f} s"
    assert survivors == [], "a process outlived the stop"
    assert (row["status"], row["attempts"], row["segments_done"], row["worker"]) == ("queued", 0, 0, "")
    assert not any(partial.rglob("*")), "its partial files were removed"
    assert "Traceback" not in log.read_text()


def test_an_idle_qcluster_stops_within_10_s_of_a_sigterm_to_its_group(tmp_path):
    env = worker_env(tmp_path)
    log = tmp_path / "qcluster.log"
    process = start_qcluster(env, log)
    try:
        time.sleep(20)  # idle, as a service is most of the time
        stopped_in, survivors = stop_and_time(process, "group", signal.SIGTERM)
    finally:
        if process.poll() is None:
            kill_everything(process)

    assert stopped_in < 10 and process.returncode == 0, f"stopped in {stopped_in:.1f} s"
    assert survivors == []
    assert "Traceback" not in log.read_text()
