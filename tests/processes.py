"""Real server processes for the live tests: an environment of their own (a temporary SQLite file, output
root and cache), starting and stopping whole process groups, a web server with a worker, and calling them."""

import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh, migrated one-machine deployment under `tmp_path`."""
    env = {
        **os.environ,
        "BARK_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "BARK_OUTPUT_ROOT": str(tmp_path / "outputs"),
        "BARK_CACHE_DIR": str(tmp_path / "cache"),
        "BARK_MAX_CONCURRENCY": "1",
        **extra,
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    _migrated_copy(Path(env["BARK_SQLITE_PATH"]), env)
    return env


_template: Path | None = None


def _migrated_copy(database: Path, env: dict[str, str]) -> None:
    """A migrated SQLite file at `database`: migrated once per test process, then copied (a migration run
    costs several seconds of every live test otherwise)."""
    global _template
    if _template is None or not _template.exists():
        template = Path(tempfile.mkdtemp(prefix="barksite-migrated-")) / "db.sqlite3"
        atexit.register(shutil.rmtree, template.parent, True)
        migrate_env = {**env, "BARK_SQLITE_PATH": str(template)}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT, env=migrate_env, check=True, timeout=300, capture_output=True,
        )  # fmt: skip
        with sqlite3.connect(template) as db:  # fold the WAL into the file, so the file alone is the database
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _template = template
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template, database)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM the process group; SIGKILL whatever is left after a grace period (qcluster's own
    shutdown waits on its workers' polling)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


# Redis for the tests that use it: the URL may name the database; each test adds a key prefix of its own.
TEST_REDIS_URL = os.environ.get("BARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/2")


def redis_broker_env() -> dict[str, str]:
    """Settings for the Redis broker under a queue name (key prefix) no other test process uses."""
    return {"BARK_BROKER_URL": TEST_REDIS_URL, "BARK_QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}"}


def drop_redis_keys(queue_name: str) -> None:
    import redis

    client = redis.from_url(TEST_REDIS_URL)
    for key in client.scan_iter(match=f"django_q:{queue_name}:*"):
        client.delete(key)


def wait_for_text(log: Path, text: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    """Wait until `text` appears in `log` (a server saying it is ready); fail with the log if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; log:\n{log.read_text(errors='replace')[-3000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def submit_jobs(env: dict[str, str], prompts: list[str]) -> list[str]:
    """Submit Piper jobs as the API does (one process for all), returning their ids as stored by SQLite."""
    code = (
        "from synthesis.jobs.submit import JobRequest, submit_job\n"
        f"for prompt in {prompts!r}:\n"
        "    print('JOB', submit_job(JobRequest(prompt=prompt, engine='piper')).id.hex)\n"
    )
    out = manage("shell", "-c", code, env=env)
    return [line.split()[1] for line in out.splitlines() if line.startswith("JOB ")]


def create_api_key(env: dict[str, str], name: str) -> str:
    """A new API key's secret, made as an operator makes one."""
    out = manage("create_api_key", name, env=env, timeout=60)
    return next(line.strip() for line in out.splitlines() if line.startswith("    "))


def gunicorn(port: int, *extra: str, threads: int = 4) -> list[str]:
    """gunicorn serving this code on 127.0.0.1:`port` with two threaded workers, as deploy/ runs it."""
    return [
        sys.executable, "-m", "gunicorn", "barksite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
        "--worker-class", "gthread", "--threads", str(threads), *extra,
    ]  # fmt: skip


def call(method: str, url: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict | bytes]:
    """The status and body (decoded when it is JSON) of one request to a live server."""
    headers = {"Content-Type": "application/json"} | ({"X-API-Key": key} if key else {})
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw


def answers(base: str) -> bool:
    """Whether the server at `base` answers its health check yet."""
    try:
        return call("GET", f"{base}/api/health")[0] == 200
    except OSError:
        return False


def wait_until_answering(base: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not answers(base):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


@contextmanager
def web_and_worker(env: dict[str, str], logs: Path, *gunicorn_args: str) -> Iterator[str]:
    """The base URL of a gunicorn (with `gunicorn_args`) and a qcluster running with `env`, once the web server
    answers; both stop afterwards. Their logs are web.log and qcluster.log in `logs`."""
    port = free_port()
    processes = [
        start([sys.executable, "manage.py", "qcluster"], env, logs / "qcluster.log"),
        start(gunicorn(port, *gunicorn_args), env, logs / "web.log"),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(base, logs / "web.log")
        yield base
    finally:
        for process in reversed(processes):
            stop(process)
