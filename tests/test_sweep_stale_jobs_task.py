"""The periodic sweep that finds jobs whose worker died."""

from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from synthesis.jobs.artifacts import store_segment
from synthesis.models import Job
from synthesis.tasks import sweep_stale_jobs_task


def running_job(*, attempts: int, heartbeat_age: timedelta) -> Job:
    beat = timezone.now() - heartbeat_age
    return Job.objects.create(
        prompt="Hi.", engine="piper", status=Job.Status.RUNNING, attempts=attempts, heartbeat_at=beat, started_at=beat
    )


def test_a_job_left_running_by_a_dead_worker_is_requeued_and_handed_to_the_workers_again(db, settings):
    job = running_job(attempts=1, heartbeat_age=timedelta(seconds=4 * settings.BARK_HEARTBEAT_S + 1))

    counts = sweep_stale_jobs_task()

    job.refresh_from_db()
    assert counts == {"requeued": 1, "failed": 0, "refused": 0, "tasks_added": 0}
    assert job.status == Job.Status.QUEUED and job.started_at is None
    assert OrmQ.objects.count() == 1, "one task in the queue for the requeued job"


def test_a_job_whose_worker_died_on_every_attempt_is_failed_with_a_readable_error(db, settings):
    job = running_job(attempts=settings.BARK_JOB_MAX_ATTEMPTS, heartbeat_age=timedelta(minutes=10))

    counts = sweep_stale_jobs_task()

    job.refresh_from_db()
    assert counts == {"requeued": 0, "failed": 1, "refused": 0, "tasks_added": 0}
    assert job.status == Job.Status.FAILED
    assert "stopped 2 time(s) without finishing" in job.error and "BARK_JOB_TIMEOUT" in job.error


def test_a_job_with_a_recent_heartbeat_is_left_alone(db, settings):
    job = running_job(attempts=1, heartbeat_age=timedelta(seconds=3 * settings.BARK_HEARTBEAT_S))

    assert sweep_stale_jobs_task() == {"requeued": 0, "failed": 0, "refused": 0, "tasks_added": 0}
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING


def test_the_sweep_is_scheduled_every_minute_by_the_migrations(db):
    schedule = Schedule.objects.get(func="synthesis.tasks.sweep_stale_jobs_task")

    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_a_queued_job_whose_task_was_lost_gets_a_new_one(db):
    job = Job.objects.create(prompt="Hi.", engine="piper", status=Job.Status.QUEUED)

    counts = sweep_stale_jobs_task()

    assert counts["tasks_added"] == 1
    assert OrmQ.objects.count() == 1
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_a_queued_job_whose_task_a_killed_cluster_had_locked_gets_a_new_one_at_once(db, settings):
    job = Job.objects.create(prompt="Hi.", engine="piper", status=Job.Status.QUEUED)
    # What a cluster killed with SIGKILL leaves: its prefetched task locked until `retry` expires.
    locked_until = timezone.now() + timedelta(seconds=settings.Q_CLUSTER["retry"])
    OrmQ.objects.create(key=settings.Q_CLUSTER["name"], payload="prefetched by a dead cluster", lock=locked_until)

    counts = sweep_stale_jobs_task()

    assert counts["tasks_added"] == 1
    assert OrmQ.objects.filter(lock__lte=timezone.now()).count() == 1, "a task a live worker can take"
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_a_queued_job_whose_task_waits_in_the_broker_gets_no_second_one(db):
    submit = Job.objects.create(prompt="Hi.", engine="piper", status=Job.Status.QUEUED)
    sweep_stale_jobs_task()  # its first task

    counts = sweep_stale_jobs_task()

    assert counts["tasks_added"] == 0 and OrmQ.objects.count() == 1
    assert Job.objects.get(pk=submit.pk).status == Job.Status.QUEUED


def test_a_stale_job_the_sweep_requeues_or_fails_keeps_none_of_the_dead_attempts_files(db, settings):
    stale = timedelta(minutes=10)
    requeued = running_job(attempts=1, heartbeat_age=stale)
    failed = running_job(attempts=settings.BARK_JOB_MAX_ATTEMPTS, heartbeat_age=stale)
    for job in (requeued, failed):
        store_segment(job, 0, lambda path: path.write_bytes(b"RIFF partial"))
        assert default_storage.exists(job.segment_name(0))

    counts = sweep_stale_jobs_task()

    assert (counts["requeued"], counts["failed"]) == (1, 1)
    for job in (requeued, failed):
        job.refresh_from_db()
        assert not default_storage.exists(job.segment_name(0)), f"the {job.status} job kept a dead attempt's segment"
    assert (requeued.status, failed.status) == (Job.Status.QUEUED, Job.Status.FAILED)
