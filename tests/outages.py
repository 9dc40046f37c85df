"""Outages of the services every host shares, made on purpose while jobs run, and what they cost.

The services are the test's own, on free loopback ports, so they can be stopped and started: a PostgreSQL cluster,
a Redis server, and a gate (a TCP relay that can refuse connections) in front of an S3 server; a SQLite file held
locked by another writer; a full disk (a tmpfs as BARK_OUTPUT_ROOT). `run_outage` runs gunicorn and runworkers with
4 jobs running and 4 waiting, makes one outage for `outage_s`, probes the API meanwhile, ends it, and counts: jobs
lost, jobs run to completion twice, seconds until the first job completes after the recovery
(tests/test_outages.py asserts on these; bench/faults.py prints them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests import event_log
from tests.fleet import pg_ready, redis_ready, wait_for
from tests.processes import (
    ROOT,
    call,
    free_port,
    gunicorn,
    manage,
    service_env,
    start,
    wait_for_text,
    wait_until_answering,
)
from tests.s3 import create_bucket, moto_server, s3_env

KINDS = ("postgres", "sqlite-lock", "redis", "s3-short", "s3-long", "disk-full")


def job_text(sentences: int) -> str:
    """About 4 s of Piper's speech a sentence, stored segment by segment (a segment holds a few sentences)."""
    return " ".join(
        f"This is sentence {n} of a text long enough to keep a worker busy for a while." for n in range(sentences)
    )


API_KEY = "outage-test-key"
# What the admin's Retry action calls.
RETRY = (
    "from synthesis.jobs.submit import retry_job; from synthesis.models import Job; "
    "retry_job(Job.objects.get(pk='{job_id}'))"
)


# --- services that can be stopped and started ---------------------------------------------------------------------


class Postgres:
    """A PostgreSQL cluster of its own, on one port across restarts."""

    def __init__(self, work: Path) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="bark-outage-pg-"))  # outside pytest's root-only directories
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.data, "postgres")
        subprocess.run(
            [*self.as_postgres, "initdb", "-D", str(self.data / "db"), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.port = free_port()
        self.log = work / "postgres.log"
        self.process: subprocess.Popen | None = None
        self.start()
        import psycopg

        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE barksite")

    @property
    def server_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.server_url}/barksite"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    *self.as_postgres, "postgres", "-D", str(self.data / "db"), "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data}",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: pg_ready(f"{self.server_url}/postgres"), self.process, self.log)

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): every connection is cut, as when the server goes away."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGINT)  # the postmaster, under runuser
            self.process.wait(timeout=30)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


class Redis:
    """A Redis server of its own (nothing kept on disk, so a restart empties it, as Redis without persistence does)."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.log = work / "redis.log"
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: redis_ready(self.url), self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class Gate:
    """A TCP relay on a port of its own in front of `target` (an S3 server): `close()` cuts every connection and
    refuses new ones, as an unreachable endpoint does; `open()` lets them through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._open = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        self._open.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        self._open.clear()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._listener.close()  # new connections are refused
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._open.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def sqlite_locked(path: Path) -> Iterator[None]:
    """Another writer holds the SQLite file's write lock until the block ends (reads still work, in WAL mode)."""
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def tmpfs_refused() -> str | None:
    """Why a small tmpfs cannot be mounted here (no privilege), or None."""
    probe = Path(tempfile.mkdtemp(prefix="bark-tmpfs-probe-"))
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], check=True, capture_output=True)
        subprocess.run(["umount", str(probe)], check=True, capture_output=True)
        return None
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"mounting a tmpfs was refused ({getattr(exc, 'stderr', b'') or exc!s})"
    finally:
        probe.rmdir()


class SmallDisk:
    """A tmpfs of `size` as the output root, which fills up; `grow()` gives it room again (space freed)."""

    def __init__(self, size: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="bark-outage-disk-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)], check=True)

    def grow(self, size: str = "512m") -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
        with contextlib.suppress(OSError):
            self.path.rmdir()


# --- one outage while jobs run ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    outage_s: float
    accepted: list[str] = field(default_factory=list)  # job ids the API accepted, before and during the outage
    lost: list[str] = field(default_factory=list)  # accepted but never completed
    twice: list[str] = field(default_factory=list)  # completed more than once
    failed: dict[str, str] = field(default_factory=dict)  # job id -> error, for jobs that failed (then retried)
    failed_artifacts: dict[str, dict] = field(default_factory=dict)  # what each failed job pointed at when it failed
    health_during: set[int] = field(default_factory=set)  # /api/health's statuses while the service was out
    health_after: int = 0
    submissions_during: list[tuple[int, str, str]] = field(default_factory=list)  # (status, content type, Retry-After)
    first_completion_after_s: float | None = None  # from the end of the outage to the first job completed after it
    all_completed_after_s: float | None = None
    processes_restarted: int = 0  # the service's own processes that exited during the run (none should)
    logs: Path | None = None


def run_outage(kind: str, work: Path, outage_s: float, sentences: int = 16, timeout_s: float = 420) -> Outcome:
    """Run the service, start 8 jobs of `sentences` sentences (4 running, 4 waiting), make outage `kind` for
    `outage_s` (a full disk and a long S3 outage: at least until they have failed a job), end it, and count."""
    outcome = Outcome(kind, outage_s, logs=work)
    text = job_text(sentences)
    with contextlib.ExitStack() as stack:
        env, begin, end = _setup(kind, work, stack)
        port = free_port()
        web = start(gunicorn(port, "--timeout", "120"), env, work / "web.log")
        workers = start([sys.executable, "manage.py", "runworkers"], env, work / "workers.log")
        stack.callback(_stop_all, [web, workers])
        base = f"http://127.0.0.1:{port}"
        wait_until_answering(base, work / "web.log")
        wait_for_text(work / "workers.log", "Workers running", workers)
        outcome.accepted = [_submit(base, text) for _ in range(8)]
        _wait(lambda: _count(base, outcome.accepted, "running") >= 4, 120, "4 jobs run")

        begin()
        ends_at = time.monotonic() + outage_s
        # A full disk and a long S3 outage last until they have failed a job (they must outlast its retries).
        until_failed = kind in ("disk-full", "s3-long")
        gives_up_at = time.monotonic() + 300
        while time.monotonic() < ends_at or (until_failed and not _count(base, outcome.accepted, "failed")):
            if time.monotonic() > gives_up_at:
                raise AssertionError(f"the {kind} outage failed no job in 300 s")
            outcome.health_during.add(call("GET", f"{base}/api/health")[0])
            if len(outcome.submissions_during) < 2:
                status, body, retry_after, kind_of = _probe_submit(base)
                outcome.submissions_during.append((status, kind_of, retry_after))
                if status == 201:
                    outcome.accepted.append(body["job_id"])
            time.sleep(1)
        end()
        recovered_at = time.time()

        deadline = time.monotonic() + timeout_s
        retried: set[str] = set()
        while time.monotonic() < deadline:
            jobs = {job_id: _job(base, job_id) for job_id in outcome.accepted}
            for job_id, job in jobs.items():
                if job.get("status") == "failed" and job_id not in retried:  # what an operator does: Retry
                    outcome.failed[job_id] = job.get("error", "")
                    outcome.failed_artifacts[job_id] = job.get("artifacts") or {}
                    manage("shell", "-c", RETRY.format(job_id=job_id), env=env)
                    retried.add(job_id)
            if all(job.get("status") == "completed" for job in jobs.values()):
                break
            time.sleep(1)
        outcome.health_after = call("GET", f"{base}/api/health")[0]
        outcome.processes_restarted = sum(process.poll() is not None for process in (web, workers))
        _account(outcome, env, recovered_at)
    return outcome


def _setup(kind: str, work: Path, stack: contextlib.ExitStack) -> tuple[dict[str, str], Callable, Callable]:
    """The service's environment for `kind`, and how to begin and end its outage."""
    extra = {
        "BARK_MAX_CONCURRENCY": "4",
        "BARK_MAX_QUEUE_SIZE": "64",
        "BARK_HEARTBEAT_S": "2",  # a dead attempt is requeued after 8 s, and the sweep runs every 2 s
        "BARK_JOB_MAX_ATTEMPTS": "5",
        "BARK_MODELS_AVAILABLE": "false",  # Piper speaks
        "BARK_API_KEY": API_KEY,
        "BARK_LOG_HOOK": "tests.event_log.record",
        "BARK_TEST_EVENT_LOG": str(work / "events.jsonl"),
    }
    env = service_env(work, **extra)
    if kind == "postgres":
        server = Postgres(work)
        stack.callback(server.close)
        env["DATABASE_URL"] = server.url
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        return env, server.stop, server.start
    if kind == "sqlite-lock":
        lock = contextlib.ExitStack()
        return env, lambda: lock.enter_context(sqlite_locked(Path(env["BARK_SQLITE_PATH"]))), lock.close
    if kind == "redis":
        redis = Redis(work)
        stack.callback(redis.close)
        env.update(BARK_BROKER_URL=redis.url, REDIS_URL=redis.url, BARK_QUEUE_NAME=f"outage-{uuid.uuid4().hex[:8]}")
        return env, redis.stop, redis.start
    if kind in ("s3-short", "s3-long"):
        endpoint = stack.enter_context(moto_server(log=work / "moto.log"))
        gate = Gate(int(endpoint.rsplit(":", 1)[1]))
        stack.callback(gate.close)
        bucket = f"outage-{uuid.uuid4().hex[:8]}"
        create_bucket(endpoint, bucket)
        env.update(s3_env(gate.url, bucket))
        return env, gate.close, gate.open
    if kind == "disk-full":
        disk = SmallDisk("3m")  # a job's segments and its WAV take about 5 MB
        stack.callback(disk.close)
        env["BARK_OUTPUT_ROOT"] = str(disk.path)
        return env, lambda: None, disk.grow
    raise ValueError(f"unknown outage {kind!r}; one of {', '.join(KINDS)}")


def _submit(base: str, text: str) -> str:
    status, body = call("POST", f"{base}/api/bark/synthesize", {"prompt": text, "engine": "piper"}, API_KEY)
    assert status == 201, body
    return body["job_id"]


def _probe_submit(base: str) -> tuple[int, dict, str, str]:
    """A submission during the outage: its status, body, Retry-After header and content type."""
    import urllib.error
    import urllib.request

    data = b'{"prompt": "Submitted during the outage.", "engine": "piper"}'
    request = urllib.request.Request(
        f"{base}/api/bark/synthesize", data=data, method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    import json

    kind = headers.get_content_type()
    body = json.loads(raw) if kind == "application/json" else {}
    return status, body, headers.get("Retry-After", ""), kind


def _job(base: str, job_id: str) -> dict:
    try:
        status, body = call("GET", f"{base}/api/bark/jobs/{job_id}", key=API_KEY)
    except OSError:
        return {}
    return body if status == 200 and isinstance(body, dict) else {}


def _count(base: str, ids: list[str], status: str) -> int:
    return sum(_job(base, job_id).get("status") == status for job_id in ids)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.5)


def _account(outcome: Outcome, env: dict[str, str], recovered_at: float) -> None:
    events = event_log.read(env["BARK_TEST_EVENT_LOG"]) if Path(env["BARK_TEST_EVENT_LOG"]).exists() else []
    completions: dict[str, list[float]] = {}
    for event in events:
        if event["event"] == "completed":
            completions.setdefault(str(uuid.UUID(event["job_id"])), []).append(float(event.get("at", 0)))
    accepted = [str(uuid.UUID(job_id)) for job_id in outcome.accepted]
    outcome.lost = [job_id for job_id in accepted if job_id not in completions]
    outcome.twice = [job_id for job_id in accepted if len(completions.get(job_id, [])) > 1]
    after = sorted(at - recovered_at for times in completions.values() for at in times if at >= recovered_at)
    outcome.first_completion_after_s = round(after[0], 1) if after else None
    outcome.all_completed_after_s = round(after[-1], 1) if after and not outcome.lost else None


def _stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
