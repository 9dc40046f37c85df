"""Recovery after crashes: the sweep that requeues jobs whose worker died and gives every queued job a task.

The job row is the truth; a task in the broker is only a wake-up that runs the most urgent queued job
(pipeline.next_job_id), and a task that finds nothing to do does nothing. So the sweep errs towards adding
a task: a spare one costs a query, a missing one strands a job. It counts as live only the tasks a worker
will still see: those waiting in the broker, and those the running clusters have prefetched into their
memory (each cluster's `task_q_size` in django-q2's shared stats). Tasks that a killed cluster had
prefetched are not counted: the ORM broker keeps those rows locked until `retry` expires (an hour), and
Redis has already handed them out (docs/worker-recovery.md).

The sweep runs every BARK_HEARTBEAT_S seconds in each `manage.py runworkers`, and once a minute as a
django-q2 schedule for clusters started with plain `manage.py qcluster`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from synthesis.jobs import breaker, lifecycle
from synthesis.models import Job

logger = logging.getLogger(__name__)

# A running job whose heartbeat is this many beats old has lost its worker.
STALE_BEATS = 4


def stale_after() -> timedelta:
    return timedelta(seconds=STALE_BEATS * settings.BARK_HEARTBEAT_S)


def sweep() -> dict[str, int]:
    """Requeue (or, past BARK_JOB_MAX_ATTEMPTS, fail) running jobs whose worker stopped beating; with
    BARK_BREAKER_WHILE_OPEN=fail, fail the queued jobs of an engine whose breaker is open; and make sure
    every queued job has a task a live worker will see."""
    counts = _requeue_stale()
    counts["refused"] = _refuse_blocked()
    counts["tasks_added"] = top_up_tasks()
    if any(counts.values()):
        logger.warning("sweep: %s", counts)
    return counts


def _requeue_stale() -> dict[str, int]:
    counts = {"requeued": 0, "failed": 0}
    cutoff = timezone.now() - stale_after()
    reason = (
        "The worker running this job stopped beating: it crashed, ran out of memory, or exceeded "
        f"BARK_JOB_TIMEOUT={settings.BARK_JOB_TIMEOUT} s."
    )
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff):
        if lifecycle.requeue(job, reason, count_attempt=True):
            counts["requeued"] += 1
        elif job.status == Job.Status.FAILED:  # it had used up BARK_JOB_MAX_ATTEMPTS
            counts["failed"] += 1
    return counts


def _refuse_blocked() -> int:
    refused = 0
    for engine in breaker.blocked_engines():
        reason = breaker.refuses_new_jobs(engine)
        if reason is None:
            continue
        for job in Job.objects.filter(status=Job.Status.QUEUED, engine=engine):
            refused += lifecycle.fail(job, reason)
    return refused


def top_up_tasks() -> int:
    """Send a task for each queued job (of an engine that takes work now) beyond the live tasks. Serialised
    with queue admission, so sweeps on several hosts do not both add the same tasks."""
    with transaction.atomic():
        lifecycle.lock_queue()
        runnable = Job.objects.filter(status=Job.Status.QUEUED).exclude(engine__in=breaker.blocked_engines())
        waiting = runnable.count()
        missing = waiting - live_tasks() if waiting else 0
        ids = [str(pk) for pk in runnable.order_by("-priority", "submitted_at").values_list("id", flat=True)[:missing]]
        for job_id in ids:
            lifecycle.send_task(job_id)  # ORM broker: in this transaction; Redis: at once
    return len(ids)


def live_tasks() -> int:
    """Tasks a live worker will still run: waiting in the broker (not locked by a cluster), plus those the
    running clusters hold in memory."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.status import Stat

    broker = get_broker()
    held = sum(stat.task_q_size for stat in Stat.get_all(broker) if stat.status != Conf.STOPPED)
    return int(broker.queue_size() or 0) + int(held)
