"""The jobs admin: list, filters, search, the read-only detail with its player, and the retry and cancel
actions an operator runs the service with."""

from django.contrib.auth.models import Permission
from django.urls import reverse
from django_q.models import OrmQ

from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import ApiKey, Job
from tests.fixtures_web import make_job

LIST = reverse("admin:synthesis_job_changelist")


def act(client, action: str, *jobs: Job):
    return client.post(LIST, {"action": action, "_selected_action": [str(j.pk) for j in jobs]}, follow=True)


def test_the_list_shows_status_text_engine_voice_requester_and_duration(admin_client, completed_job):
    key, _ = ApiKey.objects.create_key(name="podcast robot")
    by_key = submit_job(JobRequest(prompt="From the API.", engine="piper"), api_key=key)

    response = admin_client.get(LIST)

    body = response.content.decode()
    assert response.status_code == 200
    assert f"<code>{str(completed_job.id)[:8]}</code>" in body
    assert '<span class="job-badge job-completed">Completed</span>' in body
    assert '<span class="job-badge job-queued">Queued</span>' in body
    assert "user ada" in body and f"key podcast robot <code>{key.prefix}</code>" in body
    assert f"{completed_job.duration_s:.1f} s" in body and "piper/en_US-joe-medium" in body
    assert f'<span class="job-text" title="{completed_job.prompt}">{completed_job.prompt}</span>' in body
    assert "×" not in body  # attempts show only when a job needed more than one
    assert by_key.api_key == key


def test_a_long_text_is_shortened_and_repeated_attempts_show_next_to_the_status(admin_client, user):
    job = make_job(user, prompt="A rather long text. " * 10)
    Job.objects.filter(pk=job.pk).update(attempts=2)

    body = admin_client.get(LIST).content.decode()

    assert "A rather long text. A rather long text. A rather long text.…</span>" in body
    assert '<span class="job-attempts" title="attempts">×2</span>' in body


def test_filters_by_status_and_engine_and_search_by_text_or_id(admin_client, user, completed_job, failed_job):
    queued = make_job(user, prompt="Something else entirely.")

    by_status = admin_client.get(LIST, {"status__exact": "failed"}).context["cl"].result_list
    by_engine = admin_client.get(LIST, {"engine": "bark"}).context["cl"].result_list
    by_text = admin_client.get(LIST, {"q": "entirely"}).context["cl"].result_list
    by_id = admin_client.get(LIST, {"q": str(completed_job.id)}).context["cl"].result_list
    by_short_id = admin_client.get(LIST, {"q": str(queued.id)[:8]}).context["cl"].result_list

    assert list(by_status) == [failed_job]
    assert list(by_engine) == []
    assert list(by_text) == [queued]
    assert list(by_id) == [completed_job]
    assert list(by_short_id) == [queued]


def test_the_detail_is_read_only_with_player_artifacts_plan_and_timings(admin_client, completed_job):
    response = admin_client.get(reverse("admin:synthesis_job_change", args=[completed_job.pk]))

    body = response.content.decode()
    audio_url = reverse("job-file", args=[completed_job.pk, "audio"])
    assert response.status_code == 200
    assert f'<audio controls preload="metadata" src="{audio_url}"></audio>' in body
    assert f'<a href="{audio_url}?download=1">Audio</a> <code>jobs/{completed_job.id}/audio.wav</code>' in body
    assert "Metadata (JSON)" in body
    assert "&quot;segment_count&quot;: 1" in body and "&quot;audio_s&quot;:" in body
    assert "1 of 1 segments (100%)" in body
    assert 'name="_save"' not in body and "Delete" not in body


def test_the_detail_of_a_failed_job_shows_its_error(admin_client, failed_job):
    body = admin_client.get(reverse("admin:synthesis_job_change", args=[failed_job.pk])).content.decode()

    assert '<span class="job-error">Piper has one voice, piper/en_US-joe-medium;' in body


def test_jobs_cannot_be_added_or_edited_in_the_admin(admin_client, completed_job):
    assert admin_client.get(reverse("admin:synthesis_job_add")).status_code == 403
    response = admin_client.post(reverse("admin:synthesis_job_change", args=[completed_job.pk]), {"prompt": "edited"})
    assert response.status_code == 403
    completed_job.refresh_from_db()
    assert completed_job.prompt == "Hello there. This is a test."


def test_retry_action_requeues_failed_jobs_and_counts_the_rest(
    admin_client, failed_job, completed_job, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, "retry_jobs", failed_job, completed_job)

    failed_job.refresh_from_db()
    completed_job.refresh_from_db()
    assert failed_job.status == Job.Status.QUEUED and failed_job.error == ""
    assert completed_job.status == Job.Status.COMPLETED
    assert "1 job queued again. 1 skipped: it was not failed or cancelled." in response.content.decode()
    assert OrmQ.objects.get().task["args"] == (str(failed_job.id),)


def test_cancel_action_cancels_queued_and_running_jobs(admin_client, user, completed_job):
    queued = make_job(user)
    running = make_job(user, prompt="Running now.")
    running.transition(Job.Status.RUNNING)

    response = act(admin_client, "cancel_jobs", queued, running, completed_job)

    assert set(Job.objects.filter(status=Job.Status.CANCELLED)) == {queued, running}
    assert "2 jobs cancelled. 1 skipped: it was not queued or running." in response.content.decode()


def test_an_action_that_applies_to_nothing_warns(admin_client, completed_job):
    response = act(admin_client, "cancel_jobs", completed_job)

    assert "0 jobs cancelled. 1 skipped" in response.content.decode()
    assert 'class="warning"' in response.content.decode()


def test_staff_who_may_only_view_jobs_get_no_actions(client, django_user_model, failed_job):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)

    response = client.get(LIST)
    refused = act(client, "retry_jobs", failed_job)

    assert response.status_code == 200 and "retry_jobs" not in response.content.decode()
    assert refused.status_code == 200
    failed_job.refresh_from_db()
    assert failed_job.status == Job.Status.FAILED


def test_the_admin_needs_staff(client, user):
    client.force_login(user)

    response = client.get(LIST)

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_a_failed_jobs_page_has_a_retry_button_that_runs_the_retry_action(admin_client, failed_job):
    page = admin_client.get(reverse("admin:synthesis_job_change", args=[failed_job.pk])).content.decode()
    response = act(admin_client, "retry_jobs", failed_job)

    assert f'<input type="hidden" name="_selected_action" value="{failed_job.pk}">' in page
    assert '<button type="submit" name="action" value="retry_jobs">Retry this job</button>' in page
    assert "1 job queued again." in response.content.decode()
    failed_job.refresh_from_db()
    assert failed_job.status == Job.Status.QUEUED


def test_a_queued_jobs_page_has_a_cancel_button_and_a_completed_one_has_none(admin_client, user, completed_job):
    queued = make_job(user)

    queued_page = admin_client.get(reverse("admin:synthesis_job_change", args=[queued.pk])).content.decode()
    done_page = admin_client.get(reverse("admin:synthesis_job_change", args=[completed_job.pk])).content.decode()

    assert '<button type="submit" name="action" value="cancel_jobs">Cancel this job</button>' in queued_page
    assert 'name="action"' not in done_page
