"""`manage.py status`: what an operator wants to know first: can it speak, how full is the queue, and
can anybody sign in."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from synthesis.engines import all_health
from synthesis.jobs import breaker
from synthesis.models import Job


class Command(BaseCommand):
    help = "Show engine health, the queue, and how to get an account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="", help="Where the service is served, to print.")

    def handle(self, *args, **options) -> None:
        for health in all_health():
            in_dtype = f" in {health.dtype}" if health.dtype else ""
            mark = self.style.SUCCESS("ok  ") if health.ok else self.style.WARNING("off ")
            self.stdout.write(f"{mark} {health.name:<6} {health.model} on {health.device}{in_dtype}: {health.reason}")
        default = breaker.default_engine()
        self.stdout.write(f"default engine: {default or 'none (only dry runs are accepted)'}")
        queued = Job.objects.filter(status=Job.Status.QUEUED).count()
        running = Job.objects.filter(status=Job.Status.RUNNING).count()
        self.stdout.write(
            f"queue: {queued}/{settings.BARK_MAX_QUEUE_SIZE} waiting, {running} running, "
            f"{settings.BARK_MAX_CONCURRENCY} worker(s)"
        )
        if not get_user_model().objects.exists():
            self.stdout.write(
                self.style.WARNING("No account yet: create one with  .venv/bin/python manage.py createsuperuser")
            )
        if options["url"]:
            self.stdout.write(self.style.SUCCESS(f"barksite is starting at {options['url']}"))
