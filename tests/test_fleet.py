"""Three hosts sharing only PostgreSQL, Redis and S3: one web host (gunicorn) and two worker hosts. Six jobs
go in through the web host; every process of one worker host is SIGKILLed while it runs a job; all six
complete, each exactly once, and every artifact downloads through the web host.

Each host is a network namespace on a bridge (tests/fleet.py) with its own empty working directory and
output root, so nothing reaches another host but over the network. Without the privilege to make
namespaces, the same scenario runs on loopback with separate directories, and says so in a warning.
"""

import io
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scipy.io import wavfile

from tests import fleet_events
from tests.fleet import ROOT, Host, Network, python
from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, create_bucket, free_port, s3_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (ROOT / "synthesis" / "management" / "commands" / "runworkers.py").exists(),
        reason="needs `manage.py runworkers`, whose sweep every BARK_HEARTBEAT_S requeues a dead host's job in "
        "seconds (plain qcluster sweeps once a minute, too slow for this test)",
    ),
]

KEY = f"fleet-{uuid.uuid4().hex}"
BUCKET = "fleet"
# About 5 s of speech: long enough to be killed mid-job, short enough for six jobs to finish soon.
SENTENCE = "The lighthouse keeper climbed the stairs every evening at dusk, and trimmed the wick."
REDIS_BROKER = "BARK_BROKER_URL" in (ROOT / "barksite" / "settings.py").read_text()


def host_env(host: Host, shared: dict[str, str]) -> dict[str, str]:
    mine = ("BARK_", "DATABASE_URL", "REDIS_URL", "AWS_", "PROMETHEUS_", "DJANGO_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(mine)}
    (host.home / "metrics").mkdir()
    return {
        **env,
        **shared,
        "FLEET_HOST": host.name,
        "FLEET_EVENT_LOG": str(host.home / "events.jsonl"),
        "BARK_OUTPUT_ROOT": str(host.home / "outputs"),
        "BARK_CACHE_DIR": str(host.home / "cache"),
        "BARK_SQLITE_PATH": str(host.home / "unused.sqlite3"),
        "PROMETHEUS_MULTIPROC_DIR": str(host.home / "metrics"),
        "PYTHONPATH": str(ROOT),  # the code is installed on every host; the working directory is empty
        "OMP_NUM_THREADS": "1",
    }


def http(url: str, data: dict | None = None, timeout: float = 30) -> tuple[int, bytes, float]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), time.perf_counter() - started


def answers(url: str) -> bool:
    try:
        return http(url, timeout=2)[0] == 200
    except OSError:  # not listening yet
        return False


def wait_until(condition, timeout_s: float, what: str, logs=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()}")
        time.sleep(0.1)


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    status, body, _ = http(url)
    assert status == 200, body[:500]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_a_fleet_survives_losing_a_worker_host_and_serves_every_artifact(tmp_path: Path):
    missing = [tool for tool in ("initdb", "postgres", "redis-server") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the fleet's services need {', '.join(missing)} (PostgreSQL and Redis servers) on this machine")
    wall = time.monotonic()
    net = Network(["web", "w1", "w2"], tmp_path)
    try:
        run_scenario(net, wall)
    finally:
        net.close()


@dataclass
class Fleet:
    base: str  # the web host's URL
    worker_metrics: str  # w2's serve_metrics URL
    database: str
    endpoint: str
    logs: Callable[[], str]


def run_scenario(net: Network, wall: float) -> None:
    if not net.isolated:
        warnings.warn(f"fleet test on loopback with separate directories: {net.refused}", stacklevel=1)
    phases: dict[str, float] = {}
    fleet = start_fleet(net, wall, phases)
    w1, w2 = net.hosts["w1"], net.hosts["w2"]
    job_ids = [submit(fleet.base, f"Job {index + 1}. {SENTENCE}") for index in range(6)]
    streamed: list[bytes] = []
    url = f"{fleet.base}/api/bark/jobs/{job_ids[-1]}/stream"
    stream = threading.Thread(target=lambda: streamed.append(http(url, timeout=120)[1]))
    stream.start()

    wait_until(lambda: running_on(w1) is not None, 120, "w1 to start a job", fleet.logs)
    victim = running_on(w1)
    killed_at = datetime.now(UTC)
    phases["kill"] = time.monotonic() - wall
    assert w1.kill_everything() >= (2 if net.isolated else 0)
    jobs, requeued_s = wait_for_all(fleet, victim, killed_at)
    phases["all done"] = time.monotonic() - wall
    stream.join(timeout=30)

    # Exactly once: one completion per job, and only the victim started twice (its second try elsewhere).
    def events_of_w1_and_w2() -> list[dict]:
        return [e for host in (w1, w2) for e in fleet_events.read(host.home / "events.jsonl")]

    # A worker records the row's completion first, then calls the hooks: let the last event arrive.
    completed = lambda: {e["job_id"] for e in events_of_w1_and_w2() if e["event"] == "completed"}  # noqa: E731
    wait_until(lambda: completed() == set(job_ids), 30, "the completion events", fleet.logs)
    events = events_of_w1_and_w2()
    completions = [e["job_id"] for e in events if e["event"] == "completed"]
    victim_starts = [e for e in events if e["event"] == "started" and e["job_id"] == victim]
    duplicates = len(completions) - len(set(completions))
    assert sorted(completions) == sorted(job_ids) and duplicates == 0
    assert [e["host"] for e in victim_starts] == ["w1", "w2"]
    assert {job: row[1] for job, row in jobs.items()} == {job: 2 if job == victim else 1 for job in job_ids}

    download_s = check_downloads(fleet, jobs)
    assert streamed and streamed[0][:4] == b"RIFF" and len(streamed[0]) > 44 + 22050 * 2
    assert not any((host.home / "outputs" / "jobs").exists() for host in net.hosts.values())  # no local artifact
    check_metrics(fleet, w2_completed=sum(1 for e in events if e["event"] == "completed" and e["host"] == "w2"))

    mode = "network namespaces" if net.isolated else f"loopback ({net.refused})"
    print(
        f"\nfleet ({mode}, {'Redis' if REDIS_BROKER else 'database'} broker): 6/6 jobs completed, "
        f"{duplicates} duplicates; worker host killed -> its job requeued after {requeued_s:.1f} s, restarted on "
        f"the other host after {victim_starts[1]['at'] - killed_at.timestamp():.1f} s (behind the jobs queued "
        f"before it), completed {(jobs[victim][2] - killed_at).total_seconds():.1f} s after the kill; "
        f"downloads through the web host p50 {sorted(download_s)[len(download_s) // 2] * 1000:.0f} ms; "
        f"test wall {time.monotonic() - wall:.0f} s (" + ", ".join(f"{k} at {v:.0f} s" for k, v in phases.items()) + ")"
    )


def start_fleet(net: Network, wall: float, phases: dict[str, float]) -> Fleet:
    """The shared services, then the web host (gunicorn) and two worker hosts, each with its own directories."""
    database, redis_url, endpoint = net.postgres(), net.redis(), net.s3()
    create_bucket(endpoint, BUCKET)
    web, w1, w2 = net.hosts["web"], net.hosts["w1"], net.hosts["w2"]
    shared = {
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "BARK_BROKER_URL": redis_url if REDIS_BROKER else "",
        **s3_env(endpoint, BUCKET),
        "BARK_API_KEY": KEY,
        "BARK_LOG_HOOK": "tests.fleet_events.record",
        "BARK_HEARTBEAT_S": "1",
        "BARK_MAX_CONCURRENCY": "1",
        "BARK_MODELS_AVAILABLE": "false",
        "DJANGO_ALLOWED_HOSTS": web.address,
        # A non-local host needs a real shared secret key; the fleet speaks plain HTTP on its private network.
        "DJANGO_SECRET_KEY": "fleet-test-" + "k" * 50,
        "DJANGO_HTTPS": "false",
        "BARK_METRICS_ALLOW": f"{net.service_address}/32",
    }
    envs = {host.name: host_env(host, shared) for host in (web, w1, w2)}
    manage = [python(), str(ROOT / "manage.py")]
    phases["services"] = time.monotonic() - wall
    web.run([*manage, "migrate", "--noinput"], envs["web"])
    phases["migrate"] = time.monotonic() - wall
    port = 8000 if net.isolated else free_port()
    web.start(
        [python(), "-m", "gunicorn", "barksite.wsgi", "--bind", f"{web.address}:{port}", "--workers", "2",
         "--worker-class", "gthread", "--threads", "4", "--timeout", "120"],
        envs["web"], "gunicorn",
    )  # fmt: skip
    for host in (w1, w2):
        host.start([*manage, "runworkers"], envs[host.name], "runworkers")
    metrics_port = 9464 if net.isolated else free_port()
    w2.start([*manage, "serve_metrics", "--bind", f"{w2.address}:{metrics_port}"], envs["w2"], "serve_metrics")
    fleet = Fleet(
        f"http://{web.address}:{port}",
        f"http://{w2.address}:{metrics_port}/metrics",
        database,
        endpoint,
        lambda: "\n".join(f"--- {h.name}\n{h.log('gunicorn') + h.log('runworkers')}" for h in (web, w1, w2)),
    )
    wait_until(lambda: answers(f"{fleet.base}/api/health"), 120, "the web host", fleet.logs)
    phases["web up"] = time.monotonic() - wall
    return fleet


def submit(base: str, prompt: str) -> str:
    status, body, _ = http(f"{base}/api/bark/synthesize", {"prompt": prompt, "engine": "piper"})
    assert status == 201, body
    return json.loads(body)["job_id"]


def running_on(host: Host) -> str | None:
    """A job the host has started and not finished, from its event log."""
    events = fleet_events.read(host.home / "events.jsonl")
    done = {e["job_id"] for e in events if e["event"] == "completed"}
    started = [e["job_id"] for e in events if e["event"] == "started" and e["job_id"] not in done]
    return started[-1] if started else None


def wait_for_all(fleet: Fleet, victim: str, killed_at: datetime) -> tuple[dict[str, tuple], float]:
    """Wait for the victim's requeue and then every completion; returns the rows and the requeue delay."""
    with psycopg.connect(fleet.database.replace("postgres://", "postgresql://")) as db:

        def rows() -> dict[str, tuple]:
            found = db.execute("SELECT id, status, attempts, completed_at, audio FROM synthesis_job").fetchall()
            db.commit()
            return {str(row[0]): row[1:] for row in found}

        wait_until(lambda: rows()[victim][0] != "running", 60, "the sweep to requeue the dead host's job", fleet.logs)
        requeued_s = (datetime.now(UTC) - killed_at).total_seconds()
        wait_until(lambda: all(r[0] == "completed" for r in rows().values()), 150, "all six jobs", fleet.logs)
        return rows(), requeued_s


def check_downloads(fleet: Fleet, jobs: dict[str, tuple]) -> list[float]:
    """Every artifact downloads through the web host, byte for byte what the bucket holds; returns the times."""
    s3 = boto3.client(
        "s3", endpoint_url=fleet.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )  # fmt: skip
    download_s = []
    for job, row in jobs.items():
        for name, key in (("audio", row[3]), ("metadata", row[3].removesuffix(".wav") + ".json")):
            status, body, seconds = http(f"{fleet.base}/api/bark/jobs/{job}/artifacts/{name}")
            assert status == 200 and body == s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            download_s.append(seconds)
            if name == "audio":
                rate, samples = wavfile.read(io.BytesIO(body))
                assert rate == 22050 and len(samples) > rate
    return download_s


def check_metrics(fleet: Fleet, w2_completed: int) -> None:
    """The web host's /metrics adds up both gunicorn workers; w2's serve_metrics counts its own workers."""
    web = metrics(f"{fleet.base}/metrics")
    assert web[("bark_jobs", (("engine", "piper"), ("status", "completed")))] == 6
    submits = [v for (name, labels), v in web.items() if name == "bark_http_requests_total" and
               ("route", "/api/bark/synthesize") in labels]  # fmt: skip
    assert sum(submits) == 6
    worker = metrics(fleet.worker_metrics)
    assert worker[("bark_job_events_total", (("engine", "piper"), ("event", "completed")))] == w2_completed
