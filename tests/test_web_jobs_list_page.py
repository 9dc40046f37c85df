"""The jobs page: the signed-in user's jobs, newest first, paginated, with a play button per result."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import ApiKey, Job
from synthesis.web.views import JOBS_PER_PAGE
from tests.fixtures_web import make_job

URL = reverse("job-list")


def test_signed_out_visitors_are_sent_to_sign_in(client, db):
    response = client.get(URL)

    assert response.status_code == 302 and response["Location"] == f"{reverse('login')}?next={URL}"


def test_a_new_user_sees_an_invitation_to_make_a_first_job(signed_in):
    response = signed_in.get(URL)

    assert response.status_code == 200
    assert "No jobs yet." in response.content.decode() and "Make your first one" in response.content.decode()


def test_the_list_shows_the_users_jobs_with_status_duration_and_play_button(signed_in, user, other_user, completed_job):
    queued = make_job(user, prompt="Still waiting for a worker.")
    make_job(other_user, prompt="Somebody else's words.")
    submit_job(JobRequest(prompt="Only a plan.", engine="piper", dry_run=True), owner=user)

    response = signed_in.get(URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert [job.pk for job in response.context["page"]] == [queued.pk, completed_job.pk]
    assert "Somebody else" not in body and "Only a plan." not in body
    audio_url = reverse("job-file", args=[completed_job.pk, "audio"])
    assert f'<a class="play" href="{audio_url}" data-play aria-label="Play: Hello there. This is a test."' in body
    assert f'href="{reverse("job-detail", args=[queued.pk])}">Still waiting for a worker.</a>' in body
    assert '<span class="badge status-completed">Completed</span>' in body
    assert '<span class="badge status-queued">Queued</span>' in body
    assert f'<span class="duration">{completed_job.duration_s:.1f} s</span>' in body


def test_the_list_is_paginated_newest_first(signed_in, user):
    start = timezone.now() - timedelta(hours=1)
    for i in range(JOBS_PER_PAGE + 3):
        Job.objects.create(
            prompt=f"Job number {i}.", engine="piper", owner=user, submitted_at=start + timedelta(seconds=i)
        )

    first = signed_in.get(URL)
    second = signed_in.get(URL, {"page": 2})
    beyond = signed_in.get(URL, {"page": 99})

    assert [j.prompt for j in first.context["page"]][:2] == [
        f"Job number {JOBS_PER_PAGE + 2}.",
        f"Job number {JOBS_PER_PAGE + 1}.",
    ]
    assert "Page 1 of 2" in first.content.decode() and 'href="?page=2" rel="next"' in first.content.decode()
    assert [j.prompt for j in second.context["page"]] == ["Job number 2.", "Job number 1.", "Job number 0."]
    assert 'href="?page=1" rel="prev"' in second.content.decode()
    assert beyond.status_code == 200 and beyond.context["page"].number == 2


def test_a_user_also_sees_the_jobs_of_the_api_keys_they_own_with_their_origin(signed_in, user, other_user):
    own_key, _ = ApiKey.objects.create_key(name="laptop", owner=user)
    their_key, _ = ApiKey.objects.create_key(name="theirs", owner=other_user)
    by_key = submit_job(JobRequest(prompt="Sent with my key.", engine="piper"), api_key=own_key)
    submit_job(JobRequest(prompt="Sent with their key.", engine="piper"), api_key=their_key)
    submit_job(JobRequest(prompt="Sent from the terminal.", engine="piper"))

    response = signed_in.get(URL)

    body = response.content.decode()
    assert [job.pk for job in response.context["page"]] == [by_key.pk]
    assert '<span class="origin">key laptop</span>' in body
    assert signed_in.get(reverse("job-detail", args=[by_key.pk])).status_code == 200


def test_staff_see_every_job_with_its_origin(admin_client, user):
    key, _ = ApiKey.objects.create_key(name="ci")
    jobs = [
        make_job(user, prompt="A user's job."),
        submit_job(JobRequest(prompt="A key's job.", engine="piper"), api_key=key),
        submit_job(JobRequest(prompt="A terminal job.", engine="piper")),
    ]

    response = admin_client.get(URL)

    body = response.content.decode()
    assert {job.pk for job in response.context["page"]} == {job.pk for job in jobs}
    assert '<span class="origin">user ada</span>' in body
    assert '<span class="origin">key ci</span>' in body
    assert '<span class="origin">no key (CLI, open API or BARK_API_KEY)</span>' in body
