"""`manage.py runworkers`: the django-q2 cluster (the workers), the recovery sweep, and a stop that never hangs.

This process is the cluster's main process, in place of `manage.py qcluster`. Like our qcluster it first starts
the Bark runner (the one process holding the Bark model, see synthesis/engines/bark/runner.py); then two differences:
- It sweeps (synthesis/recovery.py) every BARK_HEARTBEAT_S seconds, so after a crash a job is requeued and
  a stranded queued job gets its task within seconds, even while every worker is busy.
- Its signal handler only records the signal. django-q2's own handler stops the cluster from inside the
  handler by joining the sentinel through a multiprocessing Event; when the whole process group got the
  signal, the sentinel has died holding that Event's lock and the main process waits forever
  (docs/worker-recovery.md). Here the main loop sees the signal and stops the processes itself:
  SIGTERM to the sentinel (which dies at once, so nothing is reincarnated), its workers (which hand their
  jobs back and exit, see synthesis/workers.py) and its helpers; whatever is left after STOP_GRACE_S is
  killed. The same happens whichever of the processes got the signal, and when the sentinel dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any

import psutil
from django import db
from django.conf import settings
from django.core.management.base import BaseCommand

from synthesis import recovery

logger = logging.getLogger("synthesis.workers")

# Seconds the workers get to hand their jobs back before anything left is killed; the whole stop stays
# under 10 s.
STOP_GRACE_S = 6
LOOP_S = 0.25
# How often the list of the cluster's processes is read again: each reading scans the whole process table (about
# 13 ms on a 2-core host, 5% of a core when it ran every loop, taken from the Bark runner's cores while it generates).
FAMILY_REFRESH_S = 1.0


class Command(BaseCommand):
    help = "Run the workers (a django-q2 cluster) and the recovery sweep; stop cleanly on SIGTERM or Ctrl-C."

    def handle(self, *args, **options) -> None:
        from django_q.cluster import Cluster

        from synthesis.management.commands.qcluster import start_runner

        received: list[int] = []
        runner = start_runner()  # before the fork: the workers send their Bark segments to it
        db.connections.close_all()  # the sentinel is forked next; it must not share our connection
        cluster = Cluster()

        # Replace django-q2's handlers (installed by Cluster()): ours only records the signal, and tells the Bark
        # runner, which a signal to the whole group stops too, that its exit is now expected.
        def on_stop_signal(signum: int, frame: Any) -> None:
            received.append(signum)
            if runner is not None:
                runner.shutting_down()

        signal.signal(signal.SIGTERM, on_stop_signal)
        signal.signal(signal.SIGINT, on_stop_signal)
        cluster.start()
        sentinel = cluster.sentinel
        self.stdout.write(
            f"Workers running: {settings.BARK_MAX_CONCURRENCY} process(es), "
            f"{'Redis' if settings.BARK_BROKER_URL else 'database'} broker; sweeping every "
            f"{settings.BARK_HEARTBEAT_S} s. Stop with Ctrl-C."
        )
        self.stdout.flush()  # a log file or a pipe, not only a terminal, should see this at once
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
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # not sys.exit: multiprocessing would join the (dead) sentinel through its Events


def _sweep() -> None:
    try:
        recovery.sweep()
    except Exception:  # the database may be down for a moment; the next sweep tries again
        logger.exception("sweep failed")
        db.connections.close_all()


def _family(sentinel_pid: int | None) -> tuple[list[psutil.Process], list[psutil.Process]] | None:
    """(the sentinel and its children: workers, pusher, monitor; their own children: ffmpeg and the like),
    remembered while the sentinel lives, because its children are no longer ours to find once it died."""
    try:
        sentinel = psutil.Process(sentinel_pid)
        children = sentinel.children()
        deeper = [process for child in children for process in child.children(recursive=True)]
    except psutil.Error:
        return None
    return [sentinel, *children], deeper


def stop(family: tuple[list[psutil.Process], list[psutil.Process]] | None) -> None:
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


def _send(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):  # gone already
            process.send_signal(signum)  # psutil checks the pid still names the same process
