"""The checks behind /api/health: database, queue (django-q2's ORM broker and its workers), rate-limit
cache, engines. Each returns a dict with `ok` and never raises, so one broken part cannot hide the others."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.status import Stat

from synthesis.engines import ENGINE_NAMES, get_engine
from synthesis.jobs import breaker
from synthesis.models import Job

logger = logging.getLogger(__name__)


def live_clusters() -> int:
    """qcluster processes whose heartbeat (a 3 s stat in the shared cache) is current."""
    try:
        return sum(1 for stat in Stat.get_all() if stat.status != Conf.STOPPED)
    except Exception:  # a cache that cannot be read: say "none seen" rather than fail the caller
        logger.exception("could not read django-q2 cluster stats")
        return 0


def check_database() -> dict[str, Any]:
    """Whether the database answers, and on SQLite whether it takes writes: another writer holding the file's lock
    lets reads through but stops every submission and every worker's progress."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        if connection.vendor == "sqlite":
            _probe_sqlite_write_lock()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _probe_sqlite_write_lock(wait_ms: int = 1000) -> None:
    """Take SQLite's write lock and let it go at once (an empty IMMEDIATE transaction), waiting `wait_ms` at most
    rather than the connection's 20 s; raises OperationalError ("database is locked") when another writer holds it."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        usual = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
        try:
            with transaction.atomic():  # BEGIN IMMEDIATE (the database's transaction_mode)
                pass
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(usual)}")


def pending_tasks() -> int:
    """Tasks in the broker (the database's table, or the Redis list), taken or not."""
    if settings.BARK_BROKER_URL:
        from django_q.brokers import get_broker

        return get_broker().queue_size()
    return OrmQ.objects.count()


def check_queue() -> dict[str, Any]:
    try:
        counts = {
            "pending_tasks": pending_tasks(),
            "queued_jobs": Job.objects.filter(status=Job.Status.QUEUED).count(),
            "running_jobs": Job.objects.filter(status=Job.Status.RUNNING).count(),
        }
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    workers = live_clusters()
    result: dict[str, Any] = {
        "ok": True,
        **counts,
        "max_queue_size": settings.BARK_MAX_QUEUE_SIZE,
        "clusters": workers,
        "broker": "redis" if settings.BARK_BROKER_URL else "database",
    }
    if not workers:
        result["note"] = "No worker is running: queued jobs wait until `bin/serve` (or `manage.py runworkers`) runs."
    return result


def check_cache() -> dict[str, Any]:
    """Rate limits count in this cache; if it fails, django-ratelimit refuses every limited request."""
    probe = f"barksite:health:{uuid.uuid4().hex}"
    try:
        cache.set(probe, 1, 10)
        ok = cache.incr(probe) == 2
        cache.delete(probe)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": ok, "backend": settings.CACHES["default"]["BACKEND"]}


def check_engines() -> list[dict[str, Any]]:
    """Each engine's health and its circuit breaker (closed, open or half_open, with the reason)."""
    results = []
    for name in ENGINE_NAMES:
        try:
            engine = get_engine(name)
            results.append(engine.health().as_dict())
            # An engine's runner (started with the cluster) holds its model: "loading" until warmed up, then "ready".
            if (status := engine.runner_status()) is not None:
                results[-1]["runner"] = status
        except Exception as exc:  # an engine module that cannot even import must not take health down
            results.append({"name": name, "ok": False, "reason": f"{type(exc).__name__}: {exc}"})
        try:
            results[-1]["breaker"] = breaker.get(name).as_dict()
        except Exception as exc:
            results[-1]["breaker"] = {"state": "unknown", "reason": f"{type(exc).__name__}: {exc}"}
    return results


def degraded_reasons(cache: dict[str, Any], engines: list[dict[str, Any]]) -> list[str]:
    """Why the service is degraded (serving, but some work will fail or wait); empty when it is not."""
    reasons = []
    if not cache["ok"]:
        reasons.append(f"the rate-limit cache is failing ({cache.get('error', 'increments do not add up')})")
    if not any(engine["ok"] for engine in engines):
        reasons.append("no engine can run: " + "; ".join(f"{e['name']}: {e['reason']}" for e in engines))
    for engine in engines:
        state = engine.get("breaker", {})
        if state.get("state") not in (None, "closed"):
            reasons.append(f"{engine['name']} circuit breaker {state['state']}: {state['reason']}")
    return reasons
