"""The operators' dashboard: the numbers behind the admin's "Service dashboard" page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Min
from django.utils import timezone

from synthesis.api import health
from synthesis.engines import ENGINE_NAMES, all_health
from synthesis.jobs import breaker
from synthesis.models import Job


def report() -> dict[str, Any]:
    return {
        "service": service_state(),
        "status_counts": status_counts(),
        "engines": engine_times(),
        "queue": queue_depth(),
        "duplicates_served": Job.objects.filter(deduplicated_from__isnull=False).count(),
    }


def service_state() -> dict[str, Any]:
    """`ok` or `degraded` and why, as /api/health says it (an open circuit breaker, a failing cache)."""
    reasons = health.degraded_reasons(health.check_cache(), health.check_engines())
    return {"status": "degraded" if reasons else "ok", "reasons": reasons}


def status_counts() -> list[dict[str, Any]]:
    """Every status in lifecycle order, with zeros, so the table's shape never changes."""
    counts = dict(Job.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return [{"status": value, "label": label, "count": counts.get(value, 0)} for value, label in Job.Status.choices]


def engine_times() -> list[dict[str, Any]]:
    """Each engine's health, and its average queue wait and run time in seconds. Deduplicated jobs are left
    out: they never waited or ran, and would pull both averages towards zero."""
    health = {h.name: h for h in all_health()}
    ran = Job.objects.filter(started_at__isnull=False, deduplicated_from__isnull=True)
    waits = _averages(ran, F("started_at") - F("submitted_at"))
    completed = ran.filter(status=Job.Status.COMPLETED, completed_at__isnull=False)
    runs = _averages(completed, F("completed_at") - F("started_at"))
    submitted = Job.objects.exclude(status=Job.Status.PLANNED)
    totals = dict(submitted.values_list("engine").annotate(n=Count("pk")).order_by())
    # The model each job recorded (the checkpoint it ran on, or would have), not the one configured now.
    ran_on: dict[str, list[tuple[str, int]]] = {}
    for engine, model, n in submitted.values_list("engine", "model").annotate(n=Count("pk")).order_by("engine", "-n"):
        ran_on.setdefault(engine, []).append((model or "unknown", n))
    engines = list(ENGINE_NAMES) + sorted(set(totals) - set(ENGINE_NAMES))
    return [
        {
            "engine": name,
            "health": health.get(name),
            "breaker": breaker.get(name) if name in ENGINE_NAMES else None,
            "jobs": totals.get(name, 0),
            "models": ran_on.get(name, []),
            "avg_wait_s": waits.get(name, (None, 0))[0],
            "avg_run_s": runs.get(name, (None, 0))[0],
            "completed": runs.get(name, (None, 0))[1],
        }
        for name in engines
    ]


def _averages(queryset, difference) -> dict[str, tuple[float | None, int]]:
    """engine -> (average of `difference` in seconds, how many jobs it averages)."""
    rows = (
        queryset.values("engine")
        .annotate(avg=Avg(ExpressionWrapper(difference, output_field=DurationField())), n=Count("pk"))
        .order_by()
    )
    return {row["engine"]: (_seconds(row["avg"]), row["n"]) for row in rows}


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def queue_depth() -> dict[str, Any]:
    """Jobs waiting against BARK_MAX_QUEUE_SIZE, jobs running against the worker count, and the broker."""
    active = Job.objects.filter(status__in=Job.ACTIVE)
    counts = dict(active.values_list("status").annotate(n=Count("pk")).order_by())
    waiting, limit = counts.get(Job.Status.QUEUED, 0), settings.BARK_MAX_QUEUE_SIZE
    oldest = active.filter(status=Job.Status.QUEUED).aggregate(oldest=Min("submitted_at"))["oldest"]
    return {
        "waiting": waiting,
        "limit": limit,
        "percent": min(100, round(100 * waiting / limit)),
        "full": waiting >= limit,
        "running": counts.get(Job.Status.RUNNING, 0),
        "workers": settings.BARK_MAX_CONCURRENCY,
        "broker_tasks": health.pending_tasks(),
        "oldest_wait_s": (timezone.now() - oldest).total_seconds() if oldest else None,
    }
