"""The engine runner: the one process per device that holds a model (started by runworkers and qcluster; the
engine that needs one, Bark, says how it serves: synthesis/engines/bark/runner.py)."""

from __future__ import annotations

import faulthandler
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from synthesis.engines import serve_runner


class Command(BaseCommand):
    help = "Load the runner engine's model once and serve every worker's segments over a Unix socket."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
        parser.add_argument("--parent", type=int, help="exit when the process with this pid is gone")

    def handle(self, *args: Any, **options: Any) -> None:
        def stop(signum: int, frame: Any) -> None:
            sys.exit(0)  # the listener removes its socket on the way out

        signal.signal(signal.SIGTERM, stop)
        # The runner spends its life in native code (torch, oneDNN, OpenMP): should that abort or crash, every
        # thread's Python stack goes to the log, so the job and the stage it was in can be found.
        faulthandler.enable()
        serve_runner(options["socket"], options["parent"])
