"""The admin's service dashboard: counts per status, average wait and run time per engine, duplicates,
queue depth against BARK_MAX_QUEUE_SIZE and engine health."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import Job
from synthesis.web.dashboard import report
from tests.fixtures_web import make_job

URL = reverse("admin:synthesis_job_dashboard")


def timed(job: Job, wait_s: float, run_s: float | None) -> None:
    start = timezone.now() - timedelta(hours=1)
    fields = {"submitted_at": start, "started_at": start + timedelta(seconds=wait_s)}
    if run_s is not None:
        fields["completed_at"] = fields["started_at"] + timedelta(seconds=run_s)
    Job.objects.filter(pk=job.pk).update(**fields)


@pytest.fixture
def history(user, completed_job, failed_job, settings):
    """Two completed Piper jobs (waits 2 s and 4 s, runs 10 s and 20 s), one failed (waited 6 s), one
    running (waited 8 s), one duplicate, two queued and one dry run."""
    settings.BARK_MAX_QUEUE_SIZE = 4
    second = make_job(user, prompt="Another one.")
    second.transition(Job.Status.RUNNING)
    second.transition(Job.Status.COMPLETED)
    timed(completed_job, 2, 10)
    timed(second, 4, 20)
    timed(failed_job, 6, None)
    duplicate = submit_job(JobRequest(prompt=completed_job.prompt, engine="piper", seed=7), owner=user)
    assert duplicate.deduplicated_from == completed_job
    make_job(user, prompt="Waiting one.")
    make_job(user, prompt="Waiting two.")
    running = make_job(user, prompt="Running.")
    running.transition(Job.Status.RUNNING)
    timed(running, 8, None)
    submit_job(JobRequest(prompt="A plan.", engine="piper", dry_run=True), owner=user)


def test_the_report_counts_statuses_averages_per_engine_and_queue_depth(history):
    numbers = report()

    counts = {row["status"]: row["count"] for row in numbers["status_counts"]}
    assert counts == {"planned": 1, "queued": 2, "running": 1, "completed": 3, "failed": 1, "cancelled": 0}
    piper = next(row for row in numbers["engines"] if row["engine"] == "piper")
    assert piper["jobs"] == 7 and piper["completed"] == 2
    assert piper["avg_run_s"] == pytest.approx(15.0)
    assert piper["avg_wait_s"] == pytest.approx(5.0)
    assert piper["health"].ok and piper["health"].name == "piper"
    bark = next(row for row in numbers["engines"] if row["engine"] == "bark")
    assert bark["jobs"] == 0 and bark["avg_wait_s"] is None and bark["avg_run_s"] is None
    assert numbers["duplicates_served"] == 1
    queue = numbers["queue"]
    assert (queue["waiting"], queue["limit"], queue["percent"], queue["full"]) == (2, 4, 50, False)
    assert queue["running"] == 1 and queue["oldest_wait_s"] >= 0


def test_the_dashboard_page_shows_the_numbers(admin_client, history):
    response = admin_client.get(URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Service dashboard</h1>" in body
    assert '<span class="dash-number">2 <small>/ 4</small></span>' in body
    assert f'<span class="dash-number">1 <small>/ {settings.BARK_MAX_CONCURRENCY}</small></span>' in body
    assert f'href="{reverse("admin:synthesis_job_changelist")}?status__exact=completed"' in body
    assert (
        '<span class="dash-number">3</span>\n          <span class="dash-label"><span class="job-badge job-completed">'
        in body
    )
    assert "duplicates served from earlier jobs" in body
    assert "<td>5.0 s</td>" in body and "<td>15 s <span" in body and "over 2 completed" in body
    assert '<span class="job-badge job-completed">ready</span>' in body


def test_a_full_queue_is_flagged(admin_client, user, settings):
    settings.BARK_MAX_QUEUE_SIZE = 1
    make_job(user)

    body = admin_client.get(URL).content.decode()

    assert "The queue is full: new jobs are refused with 429" in body


def test_an_engine_that_cannot_run_says_why(admin_client, settings):
    from synthesis.engines import reset_engines

    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    body = admin_client.get(URL).content.decode()

    assert '<span class="job-badge job-failed">cannot run</span>' in body
    assert "disabled by BARK_MODELS_AVAILABLE=false" in body
    reset_engines()


def test_the_admin_index_links_to_the_dashboard(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()

    assert f'<a href="{URL}"><strong>Service dashboard</strong></a>' in body


def test_the_dashboard_is_for_staff_only(client, user):
    client.force_login(user)

    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_jobs_count_against_the_model_they_ran_on_not_the_one_configured_now(admin_client, user, completed_job):
    Job.objects.filter(pk=completed_job.pk).update(engine="bark", model="checkpoints/tiny")

    bark = next(row for row in report()["engines"] if row["engine"] == "bark")
    body = admin_client.get(URL).content.decode()

    assert bark["models"] == [("checkpoints/tiny", 1)]
    assert '<div class="dash-reason"><code>checkpoints/tiny</code>: 1</div>' in body


def test_commands_in_a_health_reason_are_shown_as_code_not_backticks(admin_client, settings, tmp_path):
    from synthesis.engines import reset_engines

    settings.BARK_MODEL = str(tmp_path / "missing")
    settings.BARK_MODELS_AVAILABLE = "auto"
    reset_engines()

    body = admin_client.get(URL).content.decode()

    assert "<code>.venv/bin/python manage.py build_bark_checkpoint DIR --arch tiny</code>" in body
    assert "`" not in body.split('id="engines-title"')[1].split("</section>")[0]
    reset_engines()
