"""Hosts on one machine for the fleet test: network namespaces joined by veth pairs to a bridge, and the
shared services (PostgreSQL, Redis, an S3 server) listening only on the bridge's address.

Every host is a namespace with one address; its processes get an empty working directory and output root
of their own, and reach the services only over the veth network. Where namespaces cannot be made (no
privilege), every host is 127.0.0.1 and only the directories are separate (`Network.isolated` is False).
Everything made here is removed again by `close()`, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.s3 import free_port, moto_server

ROOT = Path(__file__).resolve().parent.parent


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def namespaces_refused() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"bkprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns add` was refused ({getattr(exc, 'stderr', b'') or exc!s})"
    _ip("netns", "delete", probe)
    return None


@dataclass
class Host:
    name: str
    address: str
    namespace: str | None
    home: Path  # the host's own empty working directory
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *args] if self.namespace else args

    def start(self, args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen:
        log = (self.home / f"{log_name}.log").open("w")
        self.logs.append(log)
        process = subprocess.Popen(
            self.command(args), cwd=self.home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def run(self, args: list[str], env: dict[str, str], timeout: float = 120) -> str:
        result = subprocess.run(
            self.command(args), cwd=self.home, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def kill_everything(self) -> int:
        """SIGKILL every process of this host (all of the namespace, or every process group started here);
        returns how many processes were killed."""
        pids: set[int] = set()
        if self.namespace:
            listed = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True)
            pids |= {int(pid) for pid in listed.stdout.split()}
        for process in self.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=15)
        for log in self.logs:
            log.close()
        return len(pids)

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


class Network:
    """A bridge with one namespace per host (or loopback), and the shared services on the bridge address."""

    def __init__(self, hosts: list[str], work: Path) -> None:
        self.stack = ExitStack()
        self.work = work
        if os.environ.get("BARK_FLEET_LOOPBACK"):  # to exercise the fallback where namespaces work
            self.refused: str | None = "BARK_FLEET_LOOPBACK is set"
        else:
            self.refused = namespaces_refused() if os.geteuid() == 0 else "not running as root"
        self.isolated = self.refused is None
        tag = os.getpid() % 100_000
        subnet = f"10.{200 + tag % 50}.{tag // 50 % 250}"
        self.service_address = f"{subnet}.1" if self.isolated else "127.0.0.1"
        self.hosts: dict[str, Host] = {}
        if self.isolated:
            self._bridge(f"bkbr{tag}", subnet)
        for index, name in enumerate(hosts):
            home = work / name
            home.mkdir()
            if self.isolated:
                namespace = f"bk{tag}{name}"
                self._namespace(namespace, f"bk{tag}v{index}", f"bkbr{tag}", f"{subnet}.{10 + index}")
                self.hosts[name] = Host(name, f"{subnet}.{10 + index}", namespace, home)
            else:
                self.hosts[name] = Host(name, "127.0.0.1", None, home)
        self.stack.callback(self._stop_hosts)

    def _bridge(self, bridge: str, subnet: str) -> None:
        _ip("link", "add", bridge, "type", "bridge")
        self.stack.callback(subprocess.run, ["ip", "link", "delete", bridge], capture_output=True)
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")

    def _namespace(self, namespace: str, veth: str, bridge: str, address: str) -> None:
        _ip("netns", "add", namespace)
        self.stack.callback(subprocess.run, ["ip", "netns", "delete", namespace], capture_output=True)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        self.stack.callback(subprocess.run, ["ip", "link", "delete", veth], capture_output=True)
        _ip("link", "set", f"{veth}p", "netns", namespace)
        _ip("link", "set", veth, "master", bridge, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", f"{veth}p")
        _ip("-n", namespace, "link", "set", f"{veth}p", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")

    def _stop_hosts(self) -> None:
        for host in self.hosts.values():
            host.kill_everything()

    # --- the shared services --------------------------------------------------------------------------

    def postgres(self) -> str:
        """A fresh PostgreSQL cluster listening on the service address; returns its database URL."""
        data = Path(tempfile.mkdtemp(prefix="bark-fleet-pg-"))  # outside pytest's root-only tmp dirs
        self.stack.callback(shutil.rmtree, data, ignore_errors=True)
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(data, "postgres")
        subprocess.run(
            [*as_postgres, "initdb", "-D", str(data / "db"), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with (data / "db" / "pg_hba.conf").open("a") as hba:  # the hosts connect over the bridge
            hba.write(f"host all all {self.service_address}/24 trust\n")
        port = free_port(self.service_address)
        server = self._spawn(
            [
                *as_postgres, "postgres", "-D", str(data / "db"), "-p", str(port),
                "-c", f"listen_addresses={self.service_address}", "-c", f"unix_socket_directories={data}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ],
            "postgres",
        )  # fmt: skip
        url = f"postgres://postgres@{self.service_address}:{port}"
        wait_for(lambda: pg_ready(f"{url}/postgres"), server, self.work / "postgres.log")
        import psycopg

        with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE barksite")
        return f"{url}/barksite"

    def redis(self) -> str:
        port = free_port(self.service_address)
        server = self._spawn(
            ["redis-server", "--bind", self.service_address, "--port", str(port), "--save", "", "--appendonly", "no",
             "--protected-mode", "no"],
            "redis",
        )  # fmt: skip
        url = f"redis://{self.service_address}:{port}/0"
        wait_for(lambda: redis_ready(url), server, self.work / "redis.log")
        return url

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        with (self.work / f"{name}.log").open("w") as log:  # the server keeps its own copy of the descriptor
            server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.stack.callback(_stop, server)
        return server

    def s3(self) -> str:
        return self.stack.enter_context(moto_server(self.service_address, self.work / "moto.log"))

    def close(self) -> None:
        self.stack.close()


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def wait_for(ready, process: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: the service did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def pg_ready(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=1).close()
        return True
    except psycopg.OperationalError:
        return False


def redis_ready(url: str) -> bool:
    import redis

    try:
        return bool(redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def python() -> str:
    return sys.executable
