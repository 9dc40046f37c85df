"""Rate limits (django-ratelimit, per key or per IP) and queue admission: every 429 has Retry-After."""

from synthesis.models import Job
from tests.api_helpers import SPEECH, client, error_of, keyed_client

URL = "/api/bark/synthesize"
PLAN = {**SPEECH, "dry_run": True}


def assert_429(response, code: str) -> int:
    assert response.status_code == 429, response.content
    assert error_of(response)["code"] == code
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 3600
    return retry_after


def test_the_submission_after_the_per_minute_limit_gets_429_with_retry_after_to_the_window_end(db, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 3
    api, _ = keyed_client()

    statuses = [api.post(URL, PLAN, format="json").status_code for _ in range(3)]
    refused = api.post(URL, PLAN, format="json")

    assert statuses == [200, 200, 200]
    assert assert_429(refused, "rate_limited") <= 60
    assert error_of(refused)["message"].startswith("Rate limit exceeded; retry in ")
    assert Job.objects.count() == 3


def test_a_keys_own_rate_limit_overrides_the_default_and_keys_count_separately(db, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 100
    strict, _ = keyed_client("strict", rate_limit_per_min=1)
    other, _ = keyed_client("other")

    assert strict.post(URL, PLAN, format="json").status_code == 200
    assert_429(strict.post(URL, PLAN, format="json"), "rate_limited")
    assert other.post(URL, PLAN, format="json").status_code == 200


def test_without_a_key_the_limit_counts_per_client_ip(db, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 1  # and no key exists: the API is open

    assert client().post(URL, PLAN, format="json", REMOTE_ADDR="10.0.0.1").status_code == 200
    assert_429(client().post(URL, PLAN, format="json", REMOTE_ADDR="10.0.0.1"), "rate_limited")
    assert client().post(URL, PLAN, format="json", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_reads_have_their_own_ten_times_larger_budget(db, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 1
    api, _ = keyed_client()
    assert api.post(URL, PLAN, format="json").status_code == 200

    reads = [api.get("/api/bark/jobs").status_code for _ in range(10)]

    assert reads == [200] * 10
    assert_429(api.get("/api/bark/jobs"), "rate_limited")
    assert_429(api.post(URL, PLAN, format="json"), "rate_limited")


def test_the_openai_endpoint_shares_the_submission_budget(db, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 1
    api, _ = keyed_client()
    assert api.post(URL, PLAN, format="json").status_code == 200

    response = api.post("/v1/audio/speech", {"model": "piper", "input": "Hi.", "voice": "alloy"}, format="json")

    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_a_full_queue_gets_429_queue_full_with_retry_after_and_records_nothing(db, settings):
    settings.BARK_MAX_QUEUE_SIZE = 2
    api, _ = keyed_client()
    assert [api.post(URL, SPEECH, format="json").status_code for _ in range(2)] == [201, 201]

    refused = api.post(URL, SPEECH, format="json")

    assert_429(refused, "queue_full")
    assert "The queue already holds 2 waiting jobs" in error_of(refused)["message"]
    assert Job.objects.filter(status=Job.Status.QUEUED).count() == 2


def test_dry_runs_are_not_held_back_by_a_full_queue(db, settings):
    settings.BARK_MAX_QUEUE_SIZE = 1
    api, _ = keyed_client()
    api.post(URL, SPEECH, format="json")

    assert api.post(URL, PLAN, format="json").status_code == 200


def test_rate_limiting_can_be_switched_off_with_django_ratelimits_setting(db, settings):
    settings.RATELIMIT_ENABLE = False
    settings.BARK_RATE_LIMIT_PER_MIN = 1
    api, _ = keyed_client()

    assert [api.post(URL, PLAN, format="json").status_code for _ in range(3)] == [200, 200, 200]
