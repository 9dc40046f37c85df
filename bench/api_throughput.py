"""Requests per second for GET /api/health and for dry-run submissions under gunicorn.

Starts gunicorn (2 gthread workers, 4 threads each) on localhost with a temporary SQLite database, cache
and output root, creates an API key with a rate limit high enough not to interfere, then drives each
route from a few client threads (keep-alive connections, stdlib http.client) for a fixed time, prints
the numbers with machine information, and stops the server.

    .venv/bin/python bench/api_throughput.py [--seconds 10] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import describe  # bench/machine.py (benchmarks run as scripts from bench/)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per route")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="barksite-bench-") as scratch:
        env = {
            **os.environ,
            "BARK_SQLITE_PATH": f"{scratch}/db.sqlite3",
            "BARK_OUTPUT_ROOT": f"{scratch}/outputs",
            "BARK_CACHE_DIR": f"{scratch}/cache",
            "BARK_MODELS_AVAILABLE": "false",
            "BARK_RATE_LIMIT_PER_MIN": "1000000",
        }
        env.pop("DATABASE_URL", None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
        created = subprocess.run(
            [*manage, "create_api_key", "bench"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        key = next(line.strip() for line in created.stdout.splitlines() if line.startswith("    "))
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "barksite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            _wait_until_up(port)
            print(f"machine: {describe()}")
            print(f"gunicorn: 2 workers x 4 threads (gthread); {args.clients} client threads, {args.seconds:g} s each")
            body = json.dumps({"prompt": "Hello there. How are you today?", "dry_run": True, "engine": "piper"})
            routes = [
                ("GET /api/health", "GET", "/api/health", None, {}),
                ("POST /api/bark/synthesize (dry run)", "POST", "/api/bark/synthesize", body, {"X-API-Key": key}),
            ]
            for label, method, path, payload, headers in routes:
                _drive(port, method, path, payload, headers, args.clients, 1.0)  # warm up each worker
                count, errors, latencies = _drive(port, method, path, payload, headers, args.clients, args.seconds)
                latencies.sort()
                p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
                p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
                print(
                    f"{label:40s} {count / args.seconds:8.1f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                    f"  ({count} ok, {errors} errors)"
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _drive(
    port: int, method: str, path: str, body: str | None, headers: dict, clients: int, seconds: float
) -> tuple[int, int, list[float]]:
    """Send requests from `clients` threads for `seconds`; return (successes, errors, latencies)."""
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    totals = {"ok": 0, "errors": 0}
    latencies: list[float] = []

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        ok = errors = 0
        mine: list[float] = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status < 300:
                ok += 1
            else:
                errors += 1
        connection.close()
        with lock:
            totals["ok"] += ok
            totals["errors"] += errors
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals["ok"], totals["errors"], latencies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer on port {port} within {timeout_s:g} s")


if __name__ == "__main__":
    main()
