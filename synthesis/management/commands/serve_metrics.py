"""`manage.py serve_metrics --bind 0.0.0.0:9464`: this host's worker metrics for Prometheus.

A worker host runs no web server, yet its qcluster processes count jobs, stage durations and audio made.
With PROMETHEUS_MULTIPROC_DIR shared with the host's qcluster, this small server reads every process's
values and serves them at /metrics, under the same rules as the web hosts' /metrics (BARK_METRICS_TOKEN,
BARK_METRICS_ALLOW). Fleet-wide gauges are left to the web hosts, so nothing is counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.management.base import BaseCommand, CommandError, CommandParser
from prometheus_client import CONTENT_TYPE_LATEST

from synthesis.http.metrics import may_scrape, render


def bind_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(value)
    return host.strip("[]"), int(port)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    proxied = "HTTP_X_FORWARDED_FOR" in environ or "HTTP_FORWARDED" in environ
    if not may_scrape(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION", ""), proxied):
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"Forbidden: send Authorization: Bearer <BARK_METRICS_TOKEN>, or scrape from BARK_METRICS_ALLOW.\n"]
    if environ.get("PATH_INFO") != "/metrics":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found: the metrics are at /metrics.\n"]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [render(fleet=False)]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every 15 s needs no log line
        pass


class Command(BaseCommand):
    help = "Serve this host's worker metrics (Prometheus format) at /metrics."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", type=bind_address, default=("127.0.0.1", 9464), help="HOST:PORT (127.0.0.1:9464)")

    def handle(self, *args: Any, bind: tuple[str, int], **options: Any) -> None:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            raise CommandError(
                "PROMETHEUS_MULTIPROC_DIR is not set: set it (the same directory for this command and the host's "
                "qcluster) so the workers' metrics can be read."
            )
        try:
            server = make_server(*bind, app, server_class=WSGIServer, handler_class=QuietHandler)
        except OSError as exc:
            raise CommandError(f"Cannot listen on {bind[0]}:{bind[1]}: {exc.strerror}.") from None
        self.stdout.write(f"Serving worker metrics at http://{bind[0]}:{bind[1]}/metrics")
        server.serve_forever()
