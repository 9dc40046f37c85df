"""`manage.py qcluster`, the name django-q2's documentation gives: barksite's workers as `manage.py runworkers` runs
them (the engine runner, the sweep, and the same stop within 10 s whichever process gets SIGTERM or SIGINT; see
synthesis/jobs/cluster.py), with django-q2's `--name` option."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import CommandParser

from synthesis.management.commands import runworkers


class Command(runworkers.Command):
    help = "Run the workers, as `manage.py runworkers` does (django-q2's own command name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-n", "--name", dest="cluster_name", help="the cluster's name, in place of the one in Q_CLUSTER settings"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]  # django-q2 reads it when the cluster starts
        super().handle(*args, **options)
