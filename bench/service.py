"""The service as `bin/serve` runs it (gunicorn and `manage.py runworkers`), for benchmarks: started on a free port in
a scratch directory with the settings a benchmark gives, called through its API, its processes read by role (the
Bark runner, the web, the workers) for their CPU time and memory (bench/throughput.py, bench/peers.py)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
VOICE = "v2/en_speaker_6"


class Service:
    """gunicorn and the workers as `bin/serve` runs them, on a free port, in a scratch directory; stopped on exit."""

    def __init__(
        self,
        scratch: Path,
        checkpoint: Path,
        tokens: int,
        fine_window: str = "full",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.env = {
            **os.environ,
            "BARK_SQLITE_PATH": str(scratch / "db.sqlite3"),
            "BARK_OUTPUT_ROOT": str(scratch / "outputs"),
            "BARK_CACHE_DIR": str(scratch / "cache"),
            "BARK_MODEL": str(checkpoint),
            "BARK_FORCE_SEMANTIC_TOKENS": str(tokens),
            "BARK_FINE_WINDOW": fine_window,
            "BARK_RATE_LIMIT_PER_MIN": "100000",
            **(extra_env or {}),
        }
        for name in ("DATABASE_URL", "REDIS_URL", "OMP_NUM_THREADS"):
            self.env.pop(name, None)  # the project's defaults: SQLite, the diskcache, torch's own thread count
        self.scratch = scratch
        self.processes: list[subprocess.Popen] = []
        self.peak_runner_rss = 0  # the most the runner (the one copy of the model) held while jobs ran
        self.ready_runner_rss = 0  # what it held once ready, before any job
        self.ready_memory: dict[str, int] = {}  # PSS by role, once the runner is ready and before any job
        self._sampling = True

    def __enter__(self) -> Service:
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=self.env, check=True, capture_output=True)
        create_key = [*manage, "create_api_key", "throughput"]
        created = subprocess.run(create_key, cwd=ROOT, env=self.env, check=True, capture_output=True, text=True)
        self.key = next(line.strip() for line in created.stdout.splitlines() if line.startswith("    "))
        self.port = free_port()
        log = (self.scratch / "service.log").open("w")
        # As bin/serve runs it.
        web = ["--config", "python:barksite.gunicorn", "--workers", "2", "--worker-class", "gthread", "--threads", "4"]
        web += ["--timeout", "300", "--log-level", "warning"]
        gunicorn = [sys.executable, "-m", "gunicorn", "barksite.wsgi", "--bind", f"127.0.0.1:{self.port}", *web]
        for command in (gunicorn, [*manage, "runworkers"]):
            self.processes.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )  # fmt: skip
            )
        started = time.monotonic()
        try:
            self._wait_until_up(300)  # a loaded 2-core host takes a while to import torch twice
            self._wait_until_ready(600)
        except BaseException:
            self.__exit__()  # __exit__ does not run when __enter__ raises: stop what was started
            raise
        self.ready_after = time.monotonic() - started
        self.ready_memory = memory_by_role(self.process_table())
        self.ready_runner_rss = self.runner_rss()
        # Sampled from here on: loading converts and packs the weights, which peaks above what serving holds.
        threading.Thread(target=self._sample_memory, daemon=True).start()
        return self

    def _wait_until_ready(self, timeout_s: float) -> None:
        """Until the Bark runner has loaded and warmed up its model (health says "ready"): a service is started once
        and then serves, so its start is reported apart, as the plain loop's load is."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.request("GET", "/api/health") or {}
            engines = health.get("checks", {}).get("engines", [])
            runner = next((engine.get("runner", {}) for engine in engines if engine.get("name") == "bark"), {})
            if runner.get("state") == "ready":
                return
            if runner.get("state") == "failed" or time.monotonic() > deadline:
                log_tail = (self.scratch / "service.log").read_text()[-3000:]
                raise SystemExit(f"the Bark runner is {runner.get('state')!r}, not ready; the log ends:\n{log_tail}")
            time.sleep(0.5)

    def _wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.request("GET", "/api/health") is None:
            if time.monotonic() > deadline:
                log_tail = (self.scratch / "service.log").read_text()[-3000:]
                raise SystemExit(f"the service did not answer within {timeout_s:.0f} s; its log ends:\n{log_tail}")
            time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        self._sampling = False
        for process in self.processes:
            # SIGTERM to each main process, as bin/serve stops them; whatever is left is killed below.
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
            process.wait(timeout=15)

    def _sample_memory(self) -> None:
        # RSS, a counter: PSS walks the runner's page tables under its memory map's lock, and sampling that twice a
        # second slowed the jobs measured here by a quarter.
        while self._sampling:
            self.peak_runner_rss = max(self.peak_runner_rss, self.runner_rss())
            time.sleep(0.5)

    def runner_rss(self) -> int:
        return sum(process.rss for process in self.process_table(memory=False) if process.role == "runner")

    def process_table(self, memory: bool = True) -> list[ServiceProcess]:
        """Every process the service started: its main processes and their descendants."""
        return processes_of([process.pid for process in self.processes], memory)

    def request(self, method: str, path: str, body: dict | None = None) -> dict | None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            headers = {"Content-Type": "application/json", "X-API-Key": getattr(self, "key", "")}
            connection.request(method, path, body=json.dumps(body) if body else None, headers=headers)
            response = connection.getresponse()
            payload = json.loads(response.read() or b"{}")
        except (OSError, ValueError):
            return None
        if response.status >= 300:
            raise SystemExit(f"{method} {path} answered {response.status}: {payload}")
        return payload

    def submit(self, text: str, seed: int, fields: dict | None = None, voice: str = VOICE) -> str:
        body = {"prompt": text, "engine": "bark", "voice": voice, "seed": seed, **(fields or {})}
        answer = self.request("POST", "/api/bark/synthesize", body)
        assert answer is not None
        return answer["job_id"]

    def job(self, job_id: str) -> dict:
        answer = self.request("GET", f"/api/bark/jobs/{job_id}")
        assert answer is not None
        return answer


@dataclass(frozen=True)
class ServiceProcess:
    pid: int
    role: str  # "runner" (holds the model), "web" (gunicorn) or "workers" (runworkers, its cluster and workers)
    cpu_s: float  # user + system CPU time so far
    rss: int  # resident memory (bytes), a counter the kernel keeps
    pss: int  # proportional set size (bytes): shared pages (libraries, forked memory) split among their sharers


def processes_of(roots: list[int], memory: bool = True) -> list[ServiceProcess]:
    """The processes `roots` and all their descendants, with their CPU time and memory.

    PSS (read unless `memory` is False) is the memory to add up: every process of the service maps torch's libraries,
    and the workers share their parent's pages, so summed RSS counts the same pages many times over. Reading it walks
    the process's page tables under its memory map's lock: take it between measurements, not during them."""
    found = []
    for root in roots:
        try:
            family = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in family:
            try:
                with process.oneshot():
                    command = " ".join(process.cmdline())
                    times = process.cpu_times()
                    rss = process.memory_info().rss
                    pss = process.memory_full_info().pss if memory else 0
            except psutil.Error:  # gone meanwhile
                continue
            role = "runner" if "engine_runner" in command else "web" if "gunicorn" in command else "workers"
            found.append(ServiceProcess(process.pid, role, times.user + times.system, rss, pss))
    return found


def memory_by_role(table: list[ServiceProcess]) -> dict[str, int]:
    memory: dict[str, int] = {}
    for process in table:
        memory[process.role] = memory.get(process.role, 0) + process.pss
    return memory


def cpu_by_role(before: list[ServiceProcess], after: list[ServiceProcess]) -> dict[str, float]:
    """CPU seconds each role used between two process tables (processes started meanwhile count from zero)."""
    earlier = {process.pid: process.cpu_s for process in before}
    cpu: dict[str, float] = {}
    for process in after:
        cpu[process.role] = cpu.get(process.role, 0.0) + process.cpu_s - earlier.get(process.pid, 0.0)
    return cpu


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
