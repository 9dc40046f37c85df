"""`manage.py purge_jobs --older-than 7d`: remove finished jobs and their files (retention).

Deduplicated jobs share their original's files, so a file is deleted only when no remaining job
points at it.
"""

import re
from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Q
from django.utils import timezone

from synthesis.jobs.artifacts import delete_job_files
from synthesis.models import Job

UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def age(value: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([mhdw])", value.strip())
    if not match:
        raise ValueError(value)
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Delete finished jobs (completed, failed, cancelled, planned) older than a given age, with their files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=age, required=True, help="e.g. 30m, 12h, 7d, 2w")
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be deleted.")

    def handle(self, *args, older_than: timedelta, dry_run: bool, **options) -> None:
        cutoff = timezone.now() - older_than
        finished = Job.objects.exclude(status__in=Job.ACTIVE).filter(submitted_at__lt=cutoff)
        doomed = list(finished)
        files = {f.name for job in doomed for f in job.artifacts().values()}
        remaining = Job.objects.exclude(pk__in=[job.pk for job in doomed])
        fields = Job.ARTIFACT_FIELDS.values()
        still_used = set()
        for field in fields:
            still_used |= set(remaining.filter(~Q(**{field: ""})).values_list(field, flat=True))
        to_delete = sorted(files - still_used)
        verb = "Would delete" if dry_run else "Deleted"
        if not dry_run:
            for name in to_delete:
                default_storage.delete(name)
            for job in doomed:  # what is left in each job's folder: segments, files of an interrupted run
                delete_job_files(str(job.id), keep=still_used)
            finished.delete()
        self.stdout.write(
            f"{verb} {len(doomed)} job(s) and {len(to_delete)} file(s) older than {cutoff:%Y-%m-%d %H:%M} UTC."
        )
