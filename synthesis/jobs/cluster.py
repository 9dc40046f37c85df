"""Running the workers: the engine runner, the django-q2 cluster, the sweep, and the one way all of them stop.

`manage.py runworkers` and `manage.py qcluster` both run `run_workers`. In this process (the cluster's main one):
1. the engine runner (the one process holding a model, e.g. Bark's: synthesis/engines/bark/runner.py) is started
   before the cluster forks its workers, and restarted if it dies;
2. django-q2's Cluster starts its sentinel, which forks the workers;
3. every BARK_HEARTBEAT_S seconds the sweep runs (synthesis/jobs/recovery.py), so after a crash a job is requeued and
   a stranded queued job gets its task within seconds, even while every worker is busy;
4. a stop signal is only recorded by the handler. django-q2's own handler stops the cluster from inside the handler
   by joining the sentinel through a multiprocessing Event; when the whole process group got the signal, the
   sentinel has died holding that Event's lock and the main process waits forever (docs/worker-recovery.md). Here
   the main loop sees the signal and stops the processes itself: SIGTERM to the sentinel (which dies at once, so
   nothing is reincarnated), its workers (which hand their jobs back and exit, see workers.py) and its helpers;
   whatever is left after STOP_GRACE_S is killed, and the job a killed worker held goes back to the queue at once
   (each running job names its worker's process). The same happens whichever of the processes got the signal, and
   when the sentinel dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from io import TextIOBase
from pathlib import Path
from typing import Any

import psutil
from django import db
from django.conf import settings

from synthesis.engines import get_engine, reset_engines, runner_engine_name
from synthesis.jobs import breaker, lifecycle, recovery
from synthesis.models import Job, process_name

logger = logging.getLogger("synthesis.workers")

# Seconds the workers get to hand their jobs back before anything left is killed; the whole stop stays under 10 s.
STOP_GRACE_S = 6
LOOP_S = 0.25
# How often the list of the cluster's processes is read again: each reading scans the whole process table (about
# 13 ms on a 2-core host, 5% of a core when it ran every loop, taken from the Bark runner's cores while it generates).
FAMILY_REFRESH_S = 1.0
READY = "Workers running"  # what the log says once the workers take jobs

Family = tuple[list[psutil.Process], list[psutil.Process]]


class RunnerProcess:
    """`manage.py engine_runner` as a child of this process, restarted whenever it exits until `stop()`."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._keep_running, name="engine-runner-monitor", daemon=True)

    def start(self) -> None:
        self.process = self._spawn()  # here, in the main thread, before the cluster forks
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        manage = Path(settings.BASE_DIR) / "manage.py"
        command = [
            sys.executable,
            str(manage),
            "engine_runner",
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
            logger.error("the engine runner exited (code %s); starting it again", code)
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
    """Start the engine runner for the workers this process is about to fork (BARK_RUNNER=auto, and the engine that
    uses a runner can run here)."""
    name = runner_engine_name()
    if settings.BARK_RUNNER != "auto" or name is None:
        return None
    health = get_engine(name).health()
    if not health.ok:
        logger.info("no %s runner: %s", name, health.reason)
        return None
    socket_path = os.path.join(tempfile.gettempdir(), f"barksite-{name}-{os.getpid()}.sock")
    runner = RunnerProcess(socket_path)
    runner.start()
    # Workers are forked from this process after this point: they inherit the setting and use the runner.
    os.environ["BARK_RUNNER_SOCKET"] = socket_path
    settings.BARK_RUNNER_SOCKET = socket_path
    reset_engines()
    logger.info("%s runner starting on %s", name, socket_path)
    return runner


def run_workers(stdout: TextIOBase) -> int:
    """Run the runner, the cluster and the sweep until a stop signal (or the sentinel's death); stop everything
    within 10 s and return the exit code."""
    from django_q.cluster import Cluster

    received: list[int] = []
    runner = start_runner()  # before the fork: the workers send their engine's segments to it
    db.connections.close_all()  # the sentinel is forked next; it must not share our connection
    cluster = Cluster()

    # Replace django-q2's handlers (installed by Cluster()): ours only records the signal, and tells the runner, which
    # a signal to the whole group stops too, that its exit is now expected.
    def on_stop_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        if runner is not None:
            runner.shutting_down()

    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)
    cluster.start()
    sentinel = cluster.sentinel
    stdout.write(
        f"{READY}: {settings.BARK_MAX_CONCURRENCY} process(es), "
        f"{'Redis' if settings.BARK_BROKER_URL else 'database'} broker; sweeping every "
        f"{settings.BARK_HEARTBEAT_S} s. Stop with Ctrl-C.\n"
    )
    stdout.flush()  # a log file or a pipe, not only a terminal, should see this at once
    family = _family(sentinel.pid)
    next_sweep = next_family = 0.0
    code = 0
    while not received:
        if not sentinel.is_alive():
            time.sleep(LOOP_S)  # a signal to the whole group kills the sentinel too: that is a stop
            if not received:
                logger.error("the django-q2 sentinel died (exit code %s); stopping", sentinel.exitcode)
                code = 1
            break
        if time.monotonic() >= next_family:
            family = _family(sentinel.pid) or family
            next_family = time.monotonic() + FAMILY_REFRESH_S
        if time.monotonic() >= next_sweep:
            _sweep()
            next_sweep = time.monotonic() + settings.BARK_HEARTBEAT_S
        time.sleep(LOOP_S)
    started = time.monotonic()
    if sentinel.is_alive():  # what started since the last reading (an ffmpeg); a dead sentinel's are not ours
        family = _family(sentinel.pid) or family
    stop(family)
    if runner is not None:
        runner.stop()
    logger.info("workers stopped in %.1f s", time.monotonic() - started)
    return code


def _sweep() -> None:
    try:
        recovery.sweep()
    except Exception as exc:  # the database or the broker may be down for a moment; the next sweep tries again
        if breaker.is_dependency_error(exc):
            logger.warning("sweep failed, %s is unreachable: %s", breaker.outage_of(exc), exc)
        else:
            logger.exception("sweep failed")
        db.connections.close_all()


def _family(sentinel_pid: int | None) -> Family | None:
    """(the sentinel and its children: workers, pusher, monitor; their own children: ffmpeg and the like),
    remembered while the sentinel lives, because its children are no longer ours to find once it died."""
    try:
        sentinel = psutil.Process(sentinel_pid)
        children = sentinel.children()
        deeper = [process for child in children for process in child.children(recursive=True)]
    except psutil.Error:
        return None
    return [sentinel, *children], deeper


def stop(family: Family | None) -> None:
    """SIGTERM the cluster's processes, give them STOP_GRACE_S, kill the rest, and requeue what the killed held."""
    if family is None:
        return
    cluster, deeper = family
    _send(cluster, signal.SIGTERM)  # the sentinel first in the list: it dies before it could reincarnate
    _, alive = psutil.wait_procs(cluster, timeout=STOP_GRACE_S)
    _send(deeper, signal.SIGTERM)  # after the workers, so a worker never sees its ffmpeg die as a failure
    _, left = psutil.wait_procs(deeper, timeout=1)
    for process in alive + left:
        logger.warning("killing %s (pid %d): it did not stop in time", process.name(), process.pid)
    _send(alive + left, signal.SIGKILL)
    psutil.wait_procs(alive + left, timeout=2)
    requeue_jobs_of([process.pid for process in alive])


def requeue_jobs_of(pids: list[int]) -> int:
    """Put back in the queue, at once, the jobs that the killed worker processes `pids` of this host were running
    (stuck in one engine call past the grace period), rather than leaving them to the heartbeat rule."""
    if not pids:
        return 0
    requeued = 0
    try:
        for job in Job.objects.filter(status=Job.Status.RUNNING, worker__in=[process_name(pid) for pid in pids]):
            requeued += lifecycle.requeue(
                job, "its worker was killed at a stop, stuck in one engine call", count_attempt=False
            )
    except Exception:  # the database is down: the sweep's heartbeat rule requeues them later instead
        logger.exception("could not requeue the jobs of the killed workers")
    return requeued


def _send(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):  # gone already
            process.send_signal(signum)  # psutil checks the pid still names the same process


def exit_now(code: int) -> None:
    """Leave without joining the (dead) sentinel through multiprocessing's Events, as sys.exit would."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
