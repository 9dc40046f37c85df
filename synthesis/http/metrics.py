"""Prometheus metrics for operators: what each process did (counters and histograms fed by the lifecycle
hooks and the HTTP middleware) and what the fleet looks like now (gauges read from the database and the
queue's cluster registry at scrape time).

With PROMETHEUS_MULTIPROC_DIR set (it must be in the environment before the process starts, and emptied
when the service starts), prometheus-client keeps every process's values in files there, so one scrape
counts every gunicorn worker and every qcluster worker of the host. Web hosts serve `/metrics`; worker
hosts run `manage.py serve_metrics`. Fleet-wide gauges come from the shared database, so every web host
reports the same values: aggregate them with max(), not sum().
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# --- what each process records ---------------------------------------------------------------------------
# Created unregistered: `render` puts them in a fresh registry per scrape (single process) or reads every
# process's files instead (multiprocess mode).

JOB_EVENTS = Counter("bark_job_events", "Job lifecycle events by event and engine.", ["event", "engine"], registry=None)
REJECTIONS = Counter(
    "bark_rejections", "Refused submissions by reason (rate_limited, queue_full).", ["reason"], registry=None
)
JOB_SECONDS = Histogram(
    "bark_job_duration_seconds",
    "Seconds from claiming a job to completing it.",
    ["engine"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600),
    registry=None,
)
STAGE_SECONDS = Histogram(
    "bark_stage_duration_seconds",
    "Seconds per pipeline stage (audio, video) of completed jobs.",
    ["engine", "stage"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=None,
)
BREAKER_CHANGES = Counter(
    "bark_breaker_changes", "Engine circuit breaker changes (opened, half_opened, closed).", ["engine", "state"],
    registry=None,
)  # fmt: skip
AUDIO_SECONDS = Counter("bark_audio_seconds", "Seconds of audio produced, by engine.", ["engine"], registry=None)
REAL_TIME_FACTOR = Histogram(
    "bark_real_time_factor",
    "Seconds of synthesis per second of audio (below 1: faster than real time), by engine and device.",
    ["engine", "device"],
    buckets=(0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50),
    registry=None,
)
HTTP_REQUESTS = Counter(
    "bark_http_requests", "HTTP responses by route, method and status.", ["route", "method", "status"], registry=None
)
HTTP_SECONDS = Histogram(
    "bark_http_request_duration_seconds",
    "Seconds to produce an HTTP response (a streamed body is not included), by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
PROCESS_METRICS = (
    JOB_EVENTS,
    REJECTIONS,
    JOB_SECONDS,
    STAGE_SECONDS,
    AUDIO_SECONDS,
    REAL_TIME_FACTOR,
    HTTP_REQUESTS,
    HTTP_SECONDS,
)


def record(event: str, payload: dict[str, Any]) -> None:
    """Called by hooks.emit for every lifecycle event."""
    engine = str(payload.get("engine") or "unknown")
    if event == "rejected":
        REJECTIONS.labels(str(payload.get("reason", "unknown"))).inc()
        return
    if event.startswith("breaker_"):
        BREAKER_CHANGES.labels(engine, event.removeprefix("breaker_")).inc()
        return
    JOB_EVENTS.labels(event, engine).inc()
    if event != "completed" or payload.get("deduplicated_from"):
        return
    if payload.get("run_s") is not None:
        JOB_SECONDS.labels(engine).observe(payload["run_s"])
    for key, seconds in payload.items():
        if key.endswith("_s") and key not in ("run_s", "duration_s") and isinstance(seconds, int | float):
            STAGE_SECONDS.labels(engine, key.removesuffix("_s")).observe(seconds)
    audio_s = payload.get("duration_s") or 0.0
    AUDIO_SECONDS.labels(engine).inc(audio_s)
    if audio_s > 0 and payload.get("audio_s") is not None:
        REAL_TIME_FACTOR.labels(engine, str(payload.get("device") or "cpu")).observe(payload["audio_s"] / audio_s)


class HttpMetricsMiddleware:
    """Counts every response by its URL pattern (not the path: job ids would make endless series)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = "/" + match.route if match is not None else "unmatched"
        HTTP_REQUESTS.labels(route, request.method or "", str(response.status_code)).inc()
        HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response


# --- what the fleet looks like now -----------------------------------------------------------------------


class FleetCollector(Collector):
    """Gauges read at scrape time from the shared database and django-q2's cluster registry."""

    def collect(self) -> Iterator[Metric]:
        from django_q.status import Stat

        from synthesis.models import Job

        jobs = GaugeMetricFamily("bark_jobs", "Jobs in the database by status and engine.", labels=["status", "engine"])
        for row in Job.objects.values("status", "engine").annotate(n=Count("id")).order_by():
            jobs.add_metric([row["status"], row["engine"]], row["n"])
        yield jobs

        now = timezone.now()
        queued = Job.objects.filter(status=Job.Status.QUEUED).aggregate(n=Count("id"), oldest=Min("submitted_at"))
        yield GaugeMetricFamily("bark_queue_depth", "Jobs waiting for a worker.", value=queued["n"])
        yield GaugeMetricFamily("bark_queue_limit", "BARK_MAX_QUEUE_SIZE.", value=settings.BARK_MAX_QUEUE_SIZE)
        oldest = (now - queued["oldest"]).total_seconds() if queued["oldest"] else 0.0
        yield GaugeMetricFamily(
            "bark_queue_oldest_age_seconds", "Age of the oldest queued job (0: none).", value=oldest
        )
        running = Job.objects.filter(status=Job.Status.RUNNING).aggregate(beat=Min("heartbeat_at"))
        stalest = (now - running["beat"]).total_seconds() if running["beat"] else 0.0
        yield GaugeMetricFamily(
            "bark_running_job_heartbeat_age_seconds",
            "Seconds since the least recent heartbeat of a running job (0: none running).",
            value=stalest,
        )

        workers = GaugeMetricFamily(
            "bark_workers_live",
            "Worker processes of each qcluster that reported within the last 3 s, by host.",
            labels=["host", "cluster"],
        )
        for stat in Stat.get_all():
            workers.add_metric([str(stat.host), str(stat.cluster_id)], len(stat.workers or []))
        yield workers


def render(*, fleet: bool = True) -> bytes:
    """The exposition text: this host's process metrics, and with `fleet` the fleet-wide gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in PROCESS_METRICS:
            registry.register(metric)
    if fleet:
        registry.register(FleetCollector())
    return generate_latest(registry)


# --- who may read them -----------------------------------------------------------------------------------


def may_scrape(remote_addr: str, authorization: str, proxied: bool) -> bool:
    """A bearer token equal to BARK_METRICS_TOKEN, or a direct connection from BARK_METRICS_ALLOW. A request
    relayed by a proxy (it carries X-Forwarded-For or Forwarded) never passes on its address, since the
    proxy's own loopback address would otherwise open /metrics to everyone behind it."""
    token = settings.BARK_METRICS_TOKEN
    offered = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    if proxied:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.BARK_METRICS_ALLOW)


def metrics_view(request: HttpRequest) -> HttpResponse:
    proxied = "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META
    if not may_scrape(request.META.get("REMOTE_ADDR", ""), request.headers.get("Authorization", ""), proxied):
        return HttpResponse(
            "Forbidden: send Authorization: Bearer <BARK_METRICS_TOKEN>, or scrape directly from an address in "
            "BARK_METRICS_ALLOW.\n",
            status=403,
            content_type="text/plain",
        )
    if request.method != "GET":
        return HttpResponse("Use GET.\n", status=405, content_type="text/plain", headers={"Allow": "GET"})
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
