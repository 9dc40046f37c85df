"""Crash recovery and stopping, measured with real clusters at the default settings (BARK_HEARTBEAT_S=10):

- the whole cluster is SIGKILLed while one job runs and two wait; the workers are started again: how long
  until the waiting jobs start, and until the killed job is requeued;
- SIGTERM to the whole process group (what systemd does) while a job runs: how long until every process
  has exited.

Each for `manage.py runworkers` (which `manage.py qcluster` now is too) and, as the plain baseline, django-q2's own
qcluster command (its main process as django-q2 ships it; its recovery comes from the sweep django-q2 schedules once
a minute).

    python bench/recovery.py [--broker database|redis]

Prints the machine it ran on.
"""

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import describe  # bench/machine.py (benchmarks run as scripts from bench/)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import drop_redis_keys, redis_broker_env, service_env, start, submit_jobs  # noqa: E402

LONG = " ".join(f"This is sentence {n} of a text long enough to keep a worker busy for a while." for n in range(6))
# django-q2's own command, run directly: barksite's `manage.py qcluster` is its supervisor, as runworkers.
PLAIN_QCLUSTER = (
    "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'barksite.settings'); django.setup(); "
    "from django_q.management.commands.qcluster import Command; Command().run_from_argv(['manage.py', 'qcluster'])"
)
COMMANDS = {"runworkers": ["manage.py", "runworkers"], "qcluster": ["-c", PLAIN_QCLUSTER]}


def status(env: dict[str, str], job: str) -> tuple[str, str | None]:
    with sqlite3.connect(env["BARK_SQLITE_PATH"], timeout=20) as db:
        return db.execute("SELECT status, started_at FROM synthesis_job WHERE id = ?", [job]).fetchone()


def until(condition, timeout_s: float) -> float | None:
    """Seconds until `condition()` held, or None after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def launch(command: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    process = start([sys.executable, *COMMANDS[command]], env, log)
    until(lambda: "running." in log.read_text() or "Workers running" in log.read_text(), 120)
    return process


def crash(command: str, env: dict[str, str], scratch: Path) -> str:
    first = launch(command, env, scratch / f"{command}-1.log")
    running, *queued = submit_jobs(env, [LONG, "The second job.", "The third job."])
    until(lambda: status(env, running)[0] == "running", 60)
    time.sleep(2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    second = launch(command, env, scratch / f"{command}-2.log")
    back = time.monotonic()
    try:
        requeued = until(lambda: status(env, running)[0] != "running", 300)
        started = until(lambda: any(status(env, job)[0] != "queued" for job in queued), 300)
    finally:
        os.killpg(second.pid, signal.SIGKILL)
        second.wait()
    requeue_text = f"{requeued + back - killed_at:.1f} s after the kill" if requeued is not None else "> 300 s"
    start_text = f"{started:.1f} s after the workers came back" if started is not None else "> 300 s"
    return f"first waiting job started {start_text}; killed job requeued {requeue_text}"


def stop(command: str, env: dict[str, str], scratch: Path) -> str:
    process = launch(command, env, scratch / f"{command}-stop.log")
    [job] = submit_jobs(env, [LONG])
    until(lambda: status(env, job)[0] == "running", 60)
    time.sleep(1)
    os.killpg(process.pid, signal.SIGTERM)
    took = until(lambda: process.poll() is not None, 60)
    if took is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return f"stopped in {took:.1f} s, job {status(env, job)[0]}" if took else "still running after 60 s (killed)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=["database", "redis"], default="database")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"broker: {args.broker}; one worker; defaults otherwise (BARK_HEARTBEAT_S=10)")
    for command in COMMANDS:
        for scenario in (crash, stop):
            with tempfile.TemporaryDirectory() as scratch:
                extra = redis_broker_env() if args.broker == "redis" else {}
                env = service_env(Path(scratch), **extra)
                try:
                    print(f"{command:>10} {scenario.__name__:>5}: {scenario(command, env, Path(scratch))}", flush=True)
                finally:
                    if extra:
                        drop_redis_keys(extra["BARK_QUEUE_NAME"])


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sent_at = datetime.now(UTC)
    main()
    print(f"took {(datetime.now(UTC) - sent_at).total_seconds():.0f} s")
