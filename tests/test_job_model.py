"""Job lifecycle rules: one place changes the status, and it refuses illegal moves."""

import pytest

from synthesis.models import IllegalTransition, Job


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("completed", "running"),
        ("completed", "queued"),
        ("planned", "queued"),
        ("planned", "running"),
        ("failed", "running"),
        ("queued", "completed"),
    ],
)
def test_an_illegal_status_change_is_refused_and_nothing_changes(db, start, target):
    job = Job.objects.create(prompt="Hi.", engine="piper", status=start)

    with pytest.raises(IllegalTransition, match=f"A {start} job cannot become {target}"):
        job.transition(target)

    assert Job.objects.get(pk=job.pk).status == start


def test_each_status_change_stamps_its_time_and_running_counts_an_attempt(db):
    job = Job.objects.create(prompt="Hi.", engine="piper")

    assert job.transition(Job.Status.RUNNING)
    assert job.started_at and job.heartbeat_at and job.attempts == 1
    assert job.transition(Job.Status.FAILED, error="boom")
    assert job.failed_at and job.error == "boom"
    assert job.transition(Job.Status.QUEUED)
    assert job.transition(Job.Status.RUNNING)
    assert job.attempts == 2
    assert job.transition(Job.Status.COMPLETED)
    assert job.completed_at and job.progress == 1.0


def test_progress_counts_finished_segments_while_running(db):
    job = Job.objects.create(prompt="Hi.", engine="piper", segments_total=4)
    job.transition(Job.Status.RUNNING)

    assert job.record_progress(segments_done=3) is True
    assert Job.objects.get(pk=job.pk).progress == 0.75


def test_recording_progress_on_a_cancelled_job_tells_the_worker_to_stop(db):
    job = Job.objects.create(prompt="Hi.", engine="piper", segments_total=4)
    job.transition(Job.Status.RUNNING)
    Job.objects.get(pk=job.pk).transition(Job.Status.CANCELLED)

    assert job.record_progress(segments_done=1) is False
    assert Job.objects.get(pk=job.pk).segments_done == 0
