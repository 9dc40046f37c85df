from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from synthesis.jobs.pipeline import run_claimed_job
from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import Job


def completed_piper_job(prompt: str, seed: int = 1) -> Job:
    job = submit_job(JobRequest(prompt=prompt, engine="piper", seed=seed), inline=True)
    if job.status == Job.Status.RUNNING:  # not deduplicated
        run_claimed_job(job)
    job.refresh_from_db()
    return job


def age(job: Job, days: int) -> None:
    Job.objects.filter(pk=job.pk).update(submitted_at=timezone.now() - timedelta(days=days))


def test_purge_deletes_old_finished_jobs_and_their_files_and_keeps_recent_ones(db, capsys):
    old = completed_piper_job("Old words.")
    recent = completed_piper_job("Recent words.")
    age(old, 10)
    old_audio = old.audio.path

    call_command("purge_jobs", "--older-than", "7d")

    assert list(Job.objects.all()) == [recent]
    assert not Path(old_audio).exists()
    assert "Deleted 1 job(s) and 2 file(s)" in capsys.readouterr().out


def test_purge_keeps_files_a_newer_deduplicated_job_still_uses(db):
    original = completed_piper_job("Shared words.", seed=5)
    copy = completed_piper_job("Shared words.", seed=5)
    assert copy.deduplicated_from == original
    age(original, 10)

    call_command("purge_jobs", "--older-than", "7d")

    copy.refresh_from_db()
    assert copy.audio.storage.exists(copy.audio.name)


def test_purge_never_touches_queued_or_running_jobs(db):
    job = Job.objects.create(prompt="Hi.", engine="piper", status=Job.Status.QUEUED)
    age(job, 30)

    call_command("purge_jobs", "--older-than", "1d")

    assert Job.objects.filter(pk=job.pk).exists()


def test_purge_dry_run_deletes_nothing(db, capsys):
    age(completed_piper_job("Old."), 10)

    call_command("purge_jobs", "--older-than", "7d", "--dry-run")

    assert Job.objects.count() == 1
    assert "Would delete 1 job(s)" in capsys.readouterr().out


def test_purge_refuses_an_unreadable_age():
    with pytest.raises(CommandError, match="invalid age value"):
        call_command("purge_jobs", "--older-than", "a week")
