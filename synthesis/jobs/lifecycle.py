"""A job's moves that more than one part of the job layer makes: sent to the workers, put back in the queue, failed.

Each is done here once, so that every path (a worker stopped by a signal, a worker killed at stop, the Bark runner
lost mid-job, the sweep finding a dead worker's job, an engine fault) treats the job and its files the same way:
a job that goes back to the queue or fails keeps nothing of the attempt that stopped (its segment files included),
except the finished artifacts a failed video stage names. Status changes go through `Job.transition`, the
conditional UPDATE that lets only one caller make each move.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from synthesis.jobs import hooks
from synthesis.jobs.artifacts import delete_job_files
from synthesis.models import Job

logger = logging.getLogger(__name__)


def send_task(job_id: str) -> None:
    """A wake-up for the workers: a task that runs the most urgent queued job (see pipeline.next_job_id). A broker
    that cannot take it now (Redis is down) is logged, not raised: the job row is the truth and is already queued,
    and the sweep sends a task for every queued job that has none once the broker is back."""
    from django_q.tasks import async_task

    try:
        async_task("synthesis.tasks.run_job_task", job_id, task_name=f"job-{job_id}")
    except Exception as exc:
        if not settings.BARK_BROKER_URL:  # the ORM broker is the database: its errors are the caller's to handle
            raise
        logger.warning("job %s: the broker did not take its task (%s); the sweep sends it later", job_id, exc)


def enqueue(job: Job) -> None:
    """Send the job's task once the row that describes it is committed (a worker that looked any earlier would not
    find it)."""
    job_id = str(job.id)
    transaction.on_commit(lambda: send_task(job_id))


def lock_queue() -> None:
    """Serialise queue admission inside the caller's transaction. SQLite's IMMEDIATE transactions already hold the
    write lock; on PostgreSQL an advisory lock keeps two submissions from both taking the last slot."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x6261726B])


def discard_files(job: Job, keep: Collection[str] = ()) -> None:
    """Remove this job's files (its segments too), except the storage names in `keep`, so a failed, cancelled or
    requeued job points at nothing half-made. A storage that cannot be reached (the bucket is out) leaves them, said
    in the log: the job's move must not wait for it, and a job's fields only ever name whole artifacts, which a
    later attempt writes again."""
    try:
        delete_job_files(str(job.id), keep)
    except Exception as exc:
        logger.warning("job %s: its files could not be removed now (%s: %s)", job.id, type(exc).__name__, exc)


def requeue(job: Job, reason: str, *, count_attempt: bool) -> bool:
    """Put a running job back in the queue to run again from its first segment: the attempt's files go and a task
    is sent. `count_attempt=False` when the stop was not the job's doing (its worker was stopped or killed at a
    stop), so the attempt does not count; otherwise a job that has used up BARK_JOB_MAX_ATTEMPTS fails instead, with
    `reason` and how many times it stopped. Returns whether the job went back to the queue."""
    job.refresh_from_db()
    if job.status != Job.Status.RUNNING:
        return False  # finished, cancelled or requeued meanwhile
    if count_attempt and job.attempts >= settings.BARK_JOB_MAX_ATTEMPTS:
        fail(job, f"{reason} It stopped {job.attempts} time(s) without finishing; retry it later, or shorten its text.")
        return False
    discard_files(job)
    fields: dict[str, Any] = {"segments_done": 0, "stage": "", "started_at": None, "worker": ""}
    if not count_attempt:
        fields["attempts"] = F("attempts") - 1
    if not job.transition(Job.Status.QUEUED, **fields):
        return False
    send_task(str(job.id))
    logger.warning("job %s handed back to the queue: %s", job.id, reason)
    return True


def fail(job: Job, error: str, *, kept: dict[str, Any] | None = None) -> bool:
    """Fail a queued or running job with `error` (in words its owner can act on). The attempt's files go, except the
    finished artifacts whose storage names `kept` carries (a failed video keeps its audio; `kept` also holds the job
    fields to record with them). Returns whether this call failed it; a job cancelled meanwhile keeps nothing."""
    kept = kept or {}
    kept_files = {kept[name] for name in Job.ARTIFACT_FIELDS.values() if kept.get(name)}
    discard_files(job, keep=kept_files)
    job.refresh_from_db()
    failed = job.status in Job.ACTIVE and job.transition(Job.Status.FAILED, error=error, stage="", worker="", **kept)
    if failed:
        hooks.emit("failed", job_id=str(job.id), engine=job.engine, error=error)
    elif kept_files:
        discard_files(job)
    return failed
