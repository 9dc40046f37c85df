"""Rate limits (django-ratelimit's keys, a moving window, per key or per IP) and queue admission: every
429 has Retry-After."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from synthesis.models import Job
from tests.api_helpers import SPEECH, client, error_of, keyed_client

# Rate-limit keys name a fresh API key, so parallel test runs never share a counter in this Redis database.
from tests.processes import (
    TEST_REDIS_URL,
    call,
    create_api_key,
    free_port,
    gunicorn,
    service_env,
    start,
    stop,
    wait_until_answering,
)


def redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def most_in_any_minute(stamps: list[float]) -> int:
    """The largest number of `stamps` inside any 60 s span."""
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps[i:] if t < start + 60) for i, start in enumerate(stamps)), default=0)


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


@pytest.fixture
def redis_down(settings):
    """The counters' store is a Redis that does not answer (nothing listens on its port)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }


def test_while_the_counters_store_is_down_rate_limited_routes_fail_closed_with_503_and_retry_after(db, redis_down):
    api, _ = keyed_client()

    response = api.post(URL, PLAN, format="json")

    assert response.status_code == 503
    assert error_of(response)["code"] == "service_unavailable" and "Redis" in error_of(response)["message"]
    assert int(response["Retry-After"]) > 0


def test_with_fail_open_set_requests_go_through_uncounted_while_the_store_is_down(db, settings, redis_down):
    settings.RATELIMIT_FAIL_OPEN = True
    settings.BARK_RATE_LIMIT_PER_MIN = 1
    api, _ = keyed_client()

    assert [api.post(URL, PLAN, format="json").status_code for _ in range(3)] == [200, 200, 200]


@pytest.fixture(params=["diskcache", "redis"])
def counter_store(request, settings):
    """The two places the counters live: diskcache's file (one machine) and Redis (REDIS_URL)."""
    if request.param == "redis":
        if not redis_reachable():
            pytest.skip(f"no Redis at {TEST_REDIS_URL} (set BARK_TEST_REDIS_URL)")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": TEST_REDIS_URL,
                "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            }
        }
    return request.param


def test_a_burst_at_a_window_edge_never_gets_more_than_the_limit_in_any_60_s(db, settings, monkeypatch, counter_store):
    # The clock is the test's: requests land exactly where a fixed window would have reset its count.
    settings.BARK_RATE_LIMIT_PER_MIN = 30
    api, _ = keyed_client()
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    accepted: list[float] = []

    def burst(at: float, count: int, spacing: float) -> list[int]:
        statuses = []
        for i in range(count):
            now[0] = at + i * spacing
            statuses.append(api.post(URL, PLAN, format="json").status_code)
            if statuses[-1] == 200:
                accepted.append(now[0])
        return statuses

    start = now[0]
    before_edge = burst(start + 59.0, 40, 0.02)  # 40 in the second before a minute's edge
    after_edge = burst(start + 60.0, 40, 0.02)  # 40 right after it
    minute_later = burst(start + 119.5, 40, 0.02)  # once the first burst is a minute old

    assert before_edge.count(200) == 30 and set(before_edge[30:]) == {429}
    assert after_edge.count(200) == 0, "a fixed window would have accepted 30 more here"
    assert 1 <= minute_later.count(200) <= 30
    assert most_in_any_minute(accepted) == 30  # the limit exactly: within the allowed 10%
    refused = api.post(URL, PLAN, format="json")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60


@pytest.mark.live
def test_every_gunicorn_worker_and_machine_shares_one_count(tmp_path):
    # One machine on diskcache (two gunicorn workers), and two "machines" on Redis (their own cache
    # directories, one database, one Redis; two workers each). 80 submissions at once: exactly the limit.
    env = service_env(tmp_path, BARK_MODELS_AVAILABLE="false", BARK_RATE_LIMIT_PER_MIN="30")
    key = create_api_key(env, "burst")
    with_redis = redis_reachable()
    machines = {"disk": {}} | (
        {"redis-a": {"REDIS_URL": TEST_REDIS_URL}, "redis-b": {"REDIS_URL": TEST_REDIS_URL}} if with_redis else {}
    )
    servers, bases = [], {}
    for name, extra in machines.items():
        port = free_port()
        machine_env = {**env, "BARK_CACHE_DIR": str(tmp_path / f"cache-{name}"), **extra}
        servers.append(start(gunicorn(port, threads=8), machine_env, tmp_path / f"web-{name}.log"))
        bases[name] = f"http://127.0.0.1:{port}"
    try:
        for name, base in bases.items():
            wait_until_answering(base, tmp_path / f"web-{name}.log", timeout_s=90)
        disk = _burst([bases["disk"]], key)
        redis_pair = _burst([bases["redis-a"], bases["redis-b"]], key) if with_redis else None
    finally:
        for server in servers:
            stop(server)

    assert disk.count(200) == 30 and disk.count(429) == 50, disk
    if redis_pair is None:
        pytest.skip(f"diskcache held; no Redis at {TEST_REDIS_URL} to test several machines (BARK_TEST_REDIS_URL)")
    assert redis_pair.count(200) == 30 and redis_pair.count(429) == 50, redis_pair


def _burst(bases: list[str], key: str) -> list[int]:
    """80 dry-run submissions at once, spread over `bases`; their statuses."""
    body = {"prompt": "hello", "dry_run": True}
    with ThreadPoolExecutor(16) as pool:
        return list(
            pool.map(lambda i: call("POST", f"{bases[i % len(bases)]}/api/bark/synthesize", body, key)[0], range(80))
        )
