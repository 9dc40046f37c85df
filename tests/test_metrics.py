"""GET /metrics: Prometheus text for operators, only for BARK_METRICS_TOKEN or BARK_METRICS_ALLOW."""

import runpy

import pytest
from django.core.exceptions import ImproperlyConfigured
from prometheus_client.parser import text_string_to_metric_families

from synthesis.jobs.submit import JobRequest, QueueFull, submit_job
from synthesis.models import Job
from tests.conftest import SETTINGS_FILE
from tests.fixtures_web import finish


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_completed_job_is_counted_with_its_audio_durations_and_real_time_factor(client, user):
    before = scrape(client)

    job = finish(submit_job(JobRequest(prompt="Counting this one.", engine="piper"), owner=user))
    after = scrape(client)

    assert job.status == Job.Status.COMPLETED
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("bark_job_events_total", event="submitted", engine="piper") == 1
    assert delta("bark_job_events_total", event="completed", engine="piper") == 1
    assert delta("bark_audio_seconds_total", engine="piper") == pytest.approx(job.duration_s)
    assert delta("bark_job_duration_seconds_count", engine="piper") == 1
    assert delta("bark_stage_duration_seconds_count", engine="piper", stage="audio") == 1
    assert delta("bark_real_time_factor_count", engine="piper", device=job.device or "cpu") == 1
    assert value(after, "bark_jobs", status="completed", engine="piper") == 1


def test_queue_gauges_and_queue_full_rejections_are_reported(client, settings, user):
    settings.BARK_MAX_QUEUE_SIZE = 1
    submit_job(JobRequest(prompt="Waiting.", engine="piper"), owner=user)
    before = scrape(client)
    with pytest.raises(QueueFull):
        submit_job(JobRequest(prompt="One too many.", engine="piper"), owner=user)

    after = scrape(client)

    assert value(after, "bark_queue_depth") == 1 and value(after, "bark_queue_limit") == 1
    assert value(after, "bark_queue_oldest_age_seconds") >= 0
    assert (
        value(after, "bark_rejections_total", reason="queue_full")
        - value(before, "bark_rejections_total", reason="queue_full")
        == 1
    )


def test_http_responses_are_counted_by_route_not_by_path(client, db):
    client.get("/api/health")
    client.get("/api/bark/jobs/not-a-job")

    samples = scrape(client)

    assert value(samples, "bark_http_requests_total", route="/api/health", method="GET", status="200") >= 1
    assert any(
        name == "bark_http_requests_total" and ("route", "/api/bark/jobs/<str:job_id>") in labels
        for name, labels in samples
    )
    assert not any("not-a-job" in str(labels) for _, labels in samples)


def test_other_addresses_need_the_token(client, settings, db):
    settings.BARK_METRICS_TOKEN = "s3cret-metrics-token"
    remote = {"REMOTE_ADDR": "203.0.113.9"}

    denied = client.get("/metrics", **remote)
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **remote)

    assert denied.status_code == 403 and b"BARK_METRICS_TOKEN" in denied.content
    assert wrong.status_code == 403
    assert scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-metrics-token", **remote)


def test_a_request_relayed_by_a_local_proxy_is_not_trusted_for_its_loopback_address(client, db):
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 403


def test_allowed_networks_are_configurable_and_empty_means_token_only(client, settings, db):
    settings.BARK_METRICS_ALLOW = ["10.20.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics").status_code == 403  # loopback is no longer listed
    settings.BARK_METRICS_ALLOW = []
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 403


def test_a_bad_allow_list_stops_start_up_saying_what_to_fix(monkeypatch):
    monkeypatch.setenv("BARK_METRICS_ALLOW", "10.0.0.0/8,intranet")

    with pytest.raises(ImproperlyConfigured, match="BARK_METRICS_ALLOW holds 'intranet'"):
        runpy.run_path(str(SETTINGS_FILE))
