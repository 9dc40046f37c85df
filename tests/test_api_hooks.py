"""BARK_LOG_HOOK / BARK_METRICS_HOOK see every queue lifecycle event of API jobs."""

import pytest

from tests import api_helpers
from tests.api_helpers import SPEECH, keyed_client, run

URL = "/api/bark/synthesize"


@pytest.fixture
def events(settings):
    settings.BARK_LOG_HOOK = "tests.api_helpers.record_event"
    api_helpers.events.clear()
    yield api_helpers.events
    api_helpers.events.clear()


def names(events) -> list[str]:
    return [name for name, _ in events]


def test_an_api_job_emits_submitted_started_and_completed(db, events):
    api, _ = keyed_client()

    job = run(api.post(URL, SPEECH, format="json").json()["job_id"])

    assert names(events) == ["submitted", "started", "completed"]
    assert all(payload["job_id"] == str(job.id) for _, payload in events)


def test_a_failing_job_emits_failed_with_its_error(db, events, monkeypatch):
    from synthesis.engines import EngineFailed
    from synthesis.engines.piper.engine import PiperEngine

    def broken(self, segments, options, on_segment=None):
        raise EngineFailed("the voice broke")

    monkeypatch.setattr(PiperEngine, "synthesize", broken)
    api, _ = keyed_client()

    run(api.post(URL, SPEECH, format="json").json()["job_id"])

    assert names(events) == ["submitted", "started", "failed"]
    assert events[-1][1]["error"] == "the voice broke"


def test_rate_limited_and_queue_full_submissions_emit_rejected_with_the_reason(db, events, settings):
    settings.BARK_MAX_QUEUE_SIZE = 1
    settings.BARK_RATE_LIMIT_PER_MIN = 2
    api, api_key = keyed_client()

    api.post(URL, SPEECH, format="json")  # queued
    api.post(URL, SPEECH, format="json")  # queue full
    api.post(URL, SPEECH, format="json")  # rate limited

    assert names(events) == ["submitted", "rejected", "rejected"]
    assert events[1][1]["reason"] == "queue_full" and events[1][1]["retry_after"] >= 1
    assert events[2][1] | {"retry_after": 0} == {
        "reason": "rate_limited",
        "budget": "submit",
        "client": f"key:{api_key.prefix}",
        "limit_per_min": 2,
        "retry_after": 0,
    }
