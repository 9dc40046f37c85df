"""The Bark runner (started by `manage.py qcluster`; see synthesis/engines/bark/runner.py)."""

from __future__ import annotations

import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from synthesis.engines import serve_bark_here


class Command(BaseCommand):
    help = "Load Bark once and serve every django-q2 worker's Bark segments over a Unix socket (qcluster starts it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
        parser.add_argument("--parent", type=int, help="exit when the process with this pid is gone")

    def handle(self, *args: Any, **options: Any) -> None:
        from synthesis.engines.bark.runner import Runner

        socket_path = options["socket"]

        def stop(signum: int, frame: Any) -> None:
            sys.exit(0)  # the listener removes its socket on the way out

        signal.signal(signal.SIGTERM, stop)
        serve_bark_here()
        Runner(socket_path, options["parent"]).serve_forever()
