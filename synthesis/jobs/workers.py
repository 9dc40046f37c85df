"""What a django-q2 worker process does with a job, and how it stops.

A worker stopped by SIGTERM or SIGINT (from `manage.py runworkers`, systemd, or Ctrl-C reaching the whole
process group) hands its running job back at once: the job goes back to `queued` (the attempt does not
count), its partial files are removed, a task is sent for it so another worker can take it, and the process
exits. The signal handler only raises an exception in the worker's main thread; the hand-back runs as
ordinary code while that exception unwinds the job (a handler that did the work itself would not be
signal-safe). An idle worker simply exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from django.db import connection

from synthesis.jobs import breaker, lifecycle, pipeline
from synthesis.models import Job

logger = logging.getLogger(__name__)


class WorkerStopping(SystemExit):
    """Raised in a worker's main thread by a stop signal. A SystemExit, so that no `except Exception` on
    the way (the pipeline's, django-q2's) takes it for a failure of the job."""


_stopping = False
_in_task = False
_claimed: Job | None = None


def install_stop_handlers(**_: Any) -> None:
    """django-q2's post_spawn receiver: runs in each new worker process."""
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGINT, _on_stop)


def _on_stop(signum: int, frame: object) -> None:
    global _stopping
    if _stopping:  # the same stop, delivered twice (to the process group and by runworkers)
        return
    _stopping = True
    if _in_task:
        raise WorkerStopping(0)
    _exit()


def run_next_job(preferred: str) -> None:
    """Claim and run the most urgent queued job whose engine takes work (see `choose_job`)."""
    global _in_task, _claimed
    _in_task = True
    try:
        job_id = choose_job(preferred)
        job = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).first() if job_id else None
        if job is None or not job.claim():
            return
        _claimed = job
        pipeline.run_claimed_job(job)
    except WorkerStopping:
        if _claimed is not None:
            hand_back(_claimed)
        _exit()
    finally:
        _in_task = False
        _claimed = None


def choose_job(preferred: str) -> str | None:
    """`preferred` or a more urgent queued job, leaving aside engines whose breaker is open; an engine
    whose cool-down is over lets exactly one caller through for its trial job."""
    for _ in range(3):
        job_id = pipeline.next_job_id(preferred, skip_engines=breaker.blocked_engines())
        if job_id is None:
            return None
        engine = Job.objects.filter(pk=job_id).values_list("engine", flat=True).first()
        if engine is not None and breaker.admit(engine):
            return job_id
    return None


def hand_back(job: Job) -> bool:
    """Put a job this worker was running back to `queued`, without counting the attempt (the stop was not the job's
    doing). False when it had already finished or been cancelled."""
    return lifecycle.requeue(job, "its worker was stopped", count_attempt=False)


def _exit() -> None:
    """Leave now. os._exit, not sys.exit: django-q2's queues would otherwise wait at exit for a monitor
    that may already be gone."""
    for handler in logging.getLogger().handlers + logging.getLogger("synthesis").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        connection.close()
    finally:
        os._exit(0)
