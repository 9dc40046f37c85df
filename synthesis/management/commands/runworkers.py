"""`manage.py runworkers`: the django-q2 cluster (the workers), the engine runner, the recovery sweep, and a stop that
never hangs (synthesis/jobs/cluster.py). `manage.py qcluster` is the same command under django-q2's name."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from synthesis.jobs.cluster import exit_now, run_workers


class Command(BaseCommand):
    help = "Run the workers (a django-q2 cluster) and the recovery sweep; stop cleanly on SIGTERM or Ctrl-C."

    def handle(self, *args: Any, **options: Any) -> None:
        exit_now(run_workers(self.stdout))
