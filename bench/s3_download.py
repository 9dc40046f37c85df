"""Extra latency of an artifact download through the web host when artifacts live in S3 instead of on disk.

Makes one Piper job (`manage.py synthesize`), copies its WAV into a bucket of moto's S3 server on loopback
under the same name, and starts two gunicorns on the same database: one reading the local output root,
one reading the bucket (BARK_S3_BUCKET). Then it alternates the same requests on both (the whole WAV, and
a 64 KiB range as a seeking player asks) and prints the median and p90 of each, and their difference.
moto on loopback has no network latency: a real S3 adds its round trips (AWS in-region: tens of ms).

    .venv/bin/python bench/s3_download.py [--requests 40]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # bench/machine.py (benchmarks run as scripts from bench/)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.s3 import create_bucket, free_port, moto_server, s3_env  # noqa: E402

KEY = "bench-operator-key-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per kind and storage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="barksite-bench-") as scratch, moto_server() as endpoint:
        env = {
            **os.environ,
            "BARK_SQLITE_PATH": f"{scratch}/db.sqlite3",
            "BARK_OUTPUT_ROOT": f"{scratch}/outputs",
            "BARK_CACHE_DIR": f"{scratch}/cache",
            "BARK_MODELS_AVAILABLE": "false",
            "BARK_API_KEY": KEY,
            "BARK_RATE_LIMIT_PER_MIN": "1000000",
        }
        for name in ("DATABASE_URL", "REDIS_URL", "BARK_S3_BUCKET"):
            env.pop(name, None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
        text = "A benchmark of downloads. " * 8
        made = subprocess.run(
            [*manage, "synthesize", text, "--engine", "piper"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        job_id = made.stdout.decode().rsplit("job ", 1)[1].strip().rstrip(".")
        name = f"jobs/{job_id}/audio.wav"
        create_bucket(endpoint, "bench")
        _upload(endpoint, Path(scratch) / "outputs" / name, name)
        servers = {"local disk": _serve(env), "S3 (moto, loopback)": _serve({**env, **s3_env(endpoint, "bench")})}
        try:
            size = (Path(scratch) / "outputs" / name).stat().st_size
            results = _measure(servers, f"/api/bark/jobs/{job_id}/artifacts/audio", args.requests)
        finally:
            for process, _ in servers.values():
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
    print(describe())
    print(f"artifact: {size / 1024:.0f} KiB WAV; {args.requests} requests per kind, alternating between the servers")
    for kind in ("whole file", "64 KiB range"):
        local, s3 = (results[(label, kind)] for label in servers)
        print(
            f"{kind:>13}: local p50 {_ms(local, 50)} p90 {_ms(local, 90)} | S3 p50 {_ms(s3, 50)} p90 {_ms(s3, 90)}"
            f" | extra p50 {(statistics.median(s3) - statistics.median(local)) * 1000:+.1f} ms"
        )


def _upload(endpoint: str, path: Path, name: str) -> None:
    import boto3

    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY

    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    client.upload_file(str(path), "bench", name)


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "barksite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--worker-class", "gthread", "--threads", "2", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(port, "/api/health", {})
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _get(port: int, path: str, headers: dict[str, str]) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    connection.request("GET", path, headers={"X-API-Key": KEY, **headers})
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status not in (200, 206):
        raise RuntimeError(f"GET {path}: {response.status}")
    return elapsed


def _measure(servers: dict, path: str, count: int) -> dict[tuple[str, str], list[float]]:
    kinds = {"whole file": {}, "64 KiB range": {"Range": "bytes=65536-131071"}}
    results: dict[tuple[str, str], list[float]] = {(label, kind): [] for label in servers for kind in kinds}
    for _, port in servers.values():  # warm up: imports, connections, the first S3 client
        _get(port, path, {})
    for _ in range(count):
        for kind, headers in kinds.items():
            for label, (_, port) in servers.items():
                results[(label, kind)].append(_get(port, path, headers))
    return results


def _ms(samples: list[float], percentile: int) -> str:
    ordered = sorted(samples)
    return f"{ordered[min(len(ordered) - 1, len(ordered) * percentile // 100)] * 1000:.1f} ms"


if __name__ == "__main__":
    main()
