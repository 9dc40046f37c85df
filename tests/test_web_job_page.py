"""The job page, its status JSON, and the cancel and retry buttons."""

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from synthesis.jobs.pipeline import run_job
from synthesis.models import Job
from tests.fixtures_web import finish, make_job


def page(job: Job) -> str:
    return reverse("job-detail", args=[job.pk])


def status_url(job: Job) -> str:
    return reverse("job-status", args=[job.pk])


def test_signed_out_visitors_are_sent_to_sign_in(client, user):
    job = make_job(user)

    for url in (page(job), status_url(job)):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = client.post(reverse("job-cancel", args=[job.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert Job.objects.get().status == Job.Status.QUEUED


def test_another_users_job_is_not_found_on_every_job_url(signed_in, other_user):
    job = finish(make_job(other_user, seed=3))

    for url in (page(job), status_url(job), reverse("job-file", args=[job.pk, "audio"])):
        assert signed_in.get(url).status_code == 404
    for action in ("job-cancel", "job-retry"):
        assert signed_in.post(reverse(action, args=[job.pk])).status_code == 404


def test_a_queued_job_shows_its_place_a_progress_bar_the_plan_and_a_cancel_button(signed_in, user):
    ahead = make_job(user, prompt="I was first.")
    job = make_job(user, prompt="Hello there. This is a test.")

    response = signed_in.get(page(job))

    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-status-url="{status_url(job)}" data-finished="false"' in body
    assert "Waiting for a worker (1 job ahead)" in body
    assert '<progress class="progress" max="100" value="0"' in body
    assert "<li>Hello there. This is a test.</li>" in body and "<code>en_US-joe-medium</code>" in body
    assert f'action="{reverse("job-cancel", args=[job.pk])}"' in body and ">Cancel job</button>" in body
    assert "Retry" not in body and "<audio" not in body
    assert ahead.status == Job.Status.QUEUED


def test_a_completed_job_has_an_audio_player_downloads_and_timings(signed_in, completed_job):
    response = signed_in.get(page(completed_job))

    body = response.content.decode()
    audio_url = reverse("job-file", args=[completed_job.pk, "audio"])
    assert response.status_code == 200
    assert 'data-finished="true"' in body and ">Completed</span>" in body and ">Done</p>" in body
    assert f'<audio class="player-audio" controls preload="auto" src="{audio_url}"' in body
    assert f'href="{audio_url}?download=1" download="audio.wav">Audio</a>' in body
    metadata_url = reverse("job-file", args=[completed_job.pk, "metadata"])
    assert f'href="{metadata_url}?download=1" download="audio.json">Metadata (JSON)</a>' in body
    assert "<dt>Waited in the queue</dt>" in body and "<dt>Ran for</dt>" in body
    assert "<dt>Speech synthesis</dt>" in body
    assert "Cancel job" not in body and ">Retry</button>" not in body
    assert "<video" not in body


def test_a_failed_job_says_why_in_plain_words_and_offers_retry(signed_in, failed_job):
    body = signed_in.get(page(failed_job)).content.decode()

    assert "<strong>This job failed.</strong> Piper has one voice, piper/en_US-joe-medium;" in body
    assert f'action="{reverse("job-retry", args=[failed_job.pk])}"' in body and ">Retry</button>" in body


def test_a_job_served_from_an_identical_earlier_job_says_so(signed_in, user, completed_job):
    from synthesis.jobs.submit import JobRequest, submit_job

    twin = submit_job(JobRequest(prompt=completed_job.prompt, engine="piper", seed=7), owner=user)

    body = signed_in.get(page(twin)).content.decode()
    assert twin.deduplicated_from == completed_job
    assert "Served from an identical earlier job" in body and "<audio" in body


def test_status_json_reports_progress_as_segments_finish(signed_in, user):
    job = make_job(user, prompt="One more sentence for the first part. " * 5 + "And a second part of it. " * 5)
    assert signed_in.get(status_url(job)).json()["summary"] == "Waiting for a worker"
    seen = []

    def poll(done: int, total: int) -> None:
        # Called as segment `done` finishes, right after the worker records it.
        seen.append(signed_in.get(status_url(job)).json())

    run_job(str(job.id), on_progress=poll)

    assert [(s["status"], s["segments_done"], s["segments_total"], s["percent"]) for s in seen] == [
        ("running", 1, 2, 50),
        ("running", 2, 2, 100),
    ]
    assert seen[0]["summary"] == "Speaking: 1 of 2 segments done" and seen[1]["stage"] == "audio"
    assert seen[1]["finished"] is False and seen[1]["label"] == "Running"
    final = signed_in.get(status_url(job)).json()
    assert (final["status"], final["percent"], final["finished"], final["summary"]) == ("completed", 100, True, "Done")


def test_status_json_of_a_finished_job_says_finished(signed_in, completed_job, failed_job):
    done = signed_in.get(status_url(completed_job)).json()
    failed = signed_in.get(status_url(failed_job)).json()

    assert (done["status"], done["finished"], done["percent"]) == ("completed", True, 100)
    assert done["duration_s"] == pytest.approx(completed_job.duration_s)
    assert (failed["status"], failed["finished"], failed["label"]) == ("failed", True, "Failed")
    assert failed["error"].startswith("Piper has one voice")


def test_cancel_stops_a_queued_job_and_says_so(signed_in, user):
    job = make_job(user)

    response = signed_in.post(reverse("job-cancel", args=[job.pk]), follow=True)

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.cancelled_at is not None
    assert response.redirect_chain == [(page(job), 302)]
    body = response.content.decode()
    assert "The job was cancelled." in body and ">Retry</button>" in body


def test_cancel_of_a_finished_job_changes_nothing(signed_in, completed_job):
    response = signed_in.post(reverse("job-cancel", args=[completed_job.pk]), follow=True)

    assert "The job is completed, so there was nothing to cancel." in response.content.decode()
    completed_job.refresh_from_db()
    assert completed_job.status == Job.Status.COMPLETED


def test_retry_queues_a_failed_job_again_and_hands_it_to_the_workers(
    signed_in, failed_job, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(reverse("job-retry", args=[failed_job.pk]), follow=True)

    failed_job.refresh_from_db()
    assert failed_job.status == Job.Status.QUEUED and failed_job.error == ""
    assert "The job is queued again." in response.content.decode()
    assert OrmQ.objects.get().task["args"] == (str(failed_job.id),)


def test_retry_of_a_queued_job_changes_nothing(signed_in, user):
    job = make_job(user)

    response = signed_in.post(reverse("job-retry", args=[job.pk]), follow=True)

    assert "Only failed or cancelled jobs can be retried; this one is queued." in response.content.decode()
    assert OrmQ.objects.count() == 0


def test_cancel_and_retry_refuse_get_requests(signed_in, user):
    job = make_job(user)

    assert signed_in.get(reverse("job-cancel", args=[job.pk])).status_code == 405
    assert signed_in.get(reverse("job-retry", args=[job.pk])).status_code == 405
    assert Job.objects.get().status == Job.Status.QUEUED


def test_cancel_needs_the_csrf_token_the_page_carries(client, user):
    client = client.__class__(enforce_csrf_checks=True)
    client.force_login(user)
    job = make_job(user)

    refused = client.post(reverse("job-cancel", args=[job.pk]))
    token = client.get(page(job)).context["csrf_token"]
    accepted = client.post(reverse("job-cancel", args=[job.pk]), {"csrfmiddlewaretoken": str(token)})

    assert refused.status_code == 403
    assert accepted.status_code == 302
    assert Job.objects.get().status == Job.Status.CANCELLED
