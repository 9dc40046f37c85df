"""django-q2's qcluster, plus the Bark runner: the one process per device that holds the Bark model.

With BARK_RUNNER=auto and Bark able to run here, the runner starts before the cluster forks its workers, so every
worker sends its Bark segments there (they share batches, and no worker loads a model). The runner is restarted if it
dies, and stopped with the cluster; it also exits on its own if this process disappears (e.g. SIGKILL). A stop signal
to the whole process group (Ctrl-C, systemd) stops it at the same moment as the cluster: that exit is expected, and
the runner is not started again while the service stops.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django_q.management.commands.qcluster import Command as QclusterCommand

from synthesis.engines import get_engine, reset_engines

logger = logging.getLogger(__name__)


class RunnerProcess:
    """`manage.py bark_runner` as a child of this process, restarted whenever it exits until `stop()`."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._keep_running, name="bark-runner-monitor", daemon=True)

    def start(self) -> None:
        self.process = self._spawn()  # here, in the main thread, before the cluster forks
        self._thread.start()

    def _spawn(self) -> subprocess.Popen:
        manage = Path(settings.BASE_DIR) / "manage.py"
        command = [
            sys.executable,
            str(manage),
            "bark_runner",
            "--socket",
            self.socket_path,
            "--parent",
            str(os.getpid()),
        ]
        return subprocess.Popen(command, env={**os.environ, "BARK_RUNNER_SOCKET": ""})

    def _keep_running(self) -> None:
        while not self._stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            # A stop signal to the whole process group (Ctrl-C, systemd) reaches the runner as it reaches this
            # process, whose handler calls shutting_down(); give it that moment before calling the exit a failure.
            # The wait is also what keeps a runner that cannot start from spinning.
            if self._stopping.wait(2):
                break
            logger.error("the Bark runner exited (code %s); starting it again", code)
            self.process = self._spawn()

    def shutting_down(self) -> None:
        """The service is stopping: the runner's exit from now on is expected, and it is not started again."""
        self._stopping.set()

    def stop(self) -> None:
        self.shutting_down()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        Path(self.socket_path).unlink(missing_ok=True)


def start_runner() -> RunnerProcess | None:
    """Start the Bark runner for the workers this process is about to fork (BARK_RUNNER=auto and Bark can run)."""
    if settings.BARK_RUNNER != "auto":
        return None
    health = get_engine("bark").health()
    if not health.ok:
        logger.info("no Bark runner: %s", health.reason)
        return None
    socket_path = os.path.join(tempfile.gettempdir(), f"barksite-bark-{os.getpid()}.sock")
    runner = RunnerProcess(socket_path)
    runner.start()
    # Workers are forked from this process after this point: they inherit the setting and use the runner.
    os.environ["BARK_RUNNER_SOCKET"] = socket_path
    settings.BARK_RUNNER_SOCKET = socket_path
    reset_engines()
    logger.info("Bark runner starting on %s", socket_path)
    return runner


class Command(QclusterCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        runner = start_runner()
        try:
            super().handle(*args, **options)
            if runner is not None:  # django-q2's Cluster has installed its stop handlers by now
                _tell_on_stop_signals(runner)
            # django-q2's handle returns as soon as the cluster runs (its sentinel is joined only at interpreter
            # exit), so the runner must stay until the cluster's own processes are gone.
            while runner is not None and _cluster_alive(runner):
                time.sleep(0.5)
        finally:
            if runner is not None:
                runner.stop()


def _tell_on_stop_signals(runner: RunnerProcess) -> None:
    """Make SIGTERM and SIGINT mark the runner as shutting down, then call the handler django-q2's `Cluster()`
    installed for them (which stops the cluster)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            runner.shutting_down()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signum, handler)


def _cluster_alive(runner: RunnerProcess) -> bool:
    runner_pid = runner.process.pid if runner.process is not None else None
    for child in psutil.Process().children():
        try:
            if child.pid != runner_pid and child.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:  # ended while we looked
            continue
    return False
