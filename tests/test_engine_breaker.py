"""Engine faults: the circuit breaker (closed, open, half-open) shared through the database, and retries with
backoff for transient faults. Piper is made to fail inside its own synthesis by BARK_FAULT_INJECTION (the drill
setting: the fault is raised where Piper's own faults arise and travels the engine's real wrapping); the breaker
itself is the real one. Bark's faults, in-process and through its runner: tests/test_bark_faults.py."""

import logging
import time

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from synthesis.engines import reset_engines
from synthesis.jobs import breaker
from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import Job
from synthesis.tasks import run_job_task, sweep_stale_jobs_task
from tests import api_helpers


@pytest.fixture
def faults(settings):
    """Two consecutive faults open a breaker; no real waiting between retries; events recorded."""
    settings.BARK_BREAKER_THRESHOLD = 2
    settings.BARK_BREAKER_COOLDOWN_S = 60
    settings.BARK_RETRY_BASE_MS = 1
    settings.BARK_LOG_HOOK = "tests.api_helpers.record_event"
    api_helpers.events.clear()
    yield settings
    inject(settings, "")  # the engines this test built with faults must not serve the next test


def inject(settings, spec: str) -> None:
    """Set BARK_FAULT_INJECTION as a worker starting now would read it (engines read it when they are built)."""
    settings.BARK_FAULT_INJECTION = spec
    reset_engines()


DEVICE_FAULT = "piper:synthesize:device"


def piper_job(prompt: str = "Hello there.") -> Job:
    return submit_job(JobRequest(prompt=prompt, engine="piper"))


def run(job: Job) -> Job:
    run_job_task(str(job.id))
    job.refresh_from_db()
    return job


def open_piper_breaker(faults) -> None:
    inject(faults, DEVICE_FAULT)
    for n in range(2):
        run(piper_job(f"Failing job {n}."))
    inject(faults, "")


def test_an_engine_that_keeps_failing_opens_its_breaker_after_the_threshold(db, faults):
    inject(faults, DEVICE_FAULT)

    first = run(piper_job("One."))
    assert breaker.get("piper").state == "closed"
    second = run(piper_job("Two."))

    assert first.status == second.status == Job.Status.FAILED
    assert "CUDA error" in second.error and first.attempts == 1, "an engine fault is not retried"
    state = breaker.get("piper")
    assert (state.state, state.failures) == ("open", 2)
    assert "failed 2 times in a row" in state.reason and "InjectedFault" in state.reason
    assert [p["engine"] for e, p in api_helpers.events if e == "breaker_opened"] == ["piper"]


def test_while_open_a_job_that_named_the_engine_stays_queued_without_spending_an_attempt(db, faults):
    open_piper_breaker(faults)

    response = APIClient().post("/api/bark/synthesize", {"prompt": "Waiting.", "engine": "piper"}, format="json")
    job = run(Job.objects.get(pk=response.json()["job_id"]))

    assert response.status_code == 201
    assert (job.status, job.attempts) == (Job.Status.QUEUED, 0)
    assert sweep_stale_jobs_task()["tasks_added"] == 0, "no task is spent on it while the breaker is open"


def test_while_open_health_and_the_dashboard_say_degraded_and_why(db, faults, admin_client):
    open_piper_breaker(faults)

    body = APIClient().get("/api/health").json()
    page = admin_client.get(reverse("admin:synthesis_job_dashboard")).content.decode()

    assert body["status"] == "degraded"
    assert any("piper circuit breaker open" in reason for reason in body["reasons"])
    piper = next(engine for engine in body["checks"]["engines"] if engine["name"] == "piper")
    assert piper["breaker"]["state"] == "open" and piper["breaker"]["retry_at"]
    assert "Service degraded" in page and "piper circuit breaker open" in page


def test_while_open_an_auto_job_goes_to_an_engine_that_works(db, faults, tiny_bark):
    inject(faults, "bark:coarse:device")
    for n in range(2):
        run(submit_job(JobRequest(prompt=f"Failing {n}.", engine="bark")))
    assert breaker.get("bark").state == "open"
    inject(faults, "")

    job = run(submit_job(JobRequest(prompt="Hello there.")))

    assert (job.engine, job.status) == ("piper", Job.Status.COMPLETED)


def test_after_the_cool_down_one_trial_job_half_opens_it_and_its_success_closes_it(db, faults):
    open_piper_breaker(faults)
    waiting = [piper_job("First waiting."), piper_job("Second waiting.")]
    faults.BARK_BREAKER_COOLDOWN_S = 1
    time.sleep(1.1)

    trial = run(waiting[0])

    assert trial.status == Job.Status.COMPLETED
    assert (breaker.get("piper").state, breaker.get("piper").failures) == ("closed", 0)
    transitions = [e for e, _ in api_helpers.events if e.startswith("breaker_")]
    assert transitions == ["breaker_opened", "breaker_half_opened", "breaker_closed"]
    assert run(waiting[1]).status == Job.Status.COMPLETED


def test_after_the_cool_down_exactly_one_worker_gets_the_trial(db, faults):
    open_piper_breaker(faults)
    faults.BARK_BREAKER_COOLDOWN_S = 1
    time.sleep(1.1)

    admitted = [breaker.admit("piper") for _ in range(3)]

    assert admitted == [True, False, False]
    assert breaker.get("piper").state == "half_open" and "piper" in breaker.blocked_engines()


def test_a_failed_trial_opens_the_breaker_again(db, faults):
    open_piper_breaker(faults)
    faults.BARK_BREAKER_COOLDOWN_S = 1
    time.sleep(1.1)
    inject(faults, DEVICE_FAULT)

    trial = run(piper_job("Trial."))

    assert trial.status == Job.Status.FAILED
    assert breaker.get("piper").state == "open"


def test_with_fail_while_open_new_jobs_are_refused_and_waiting_ones_fail_with_the_reason(db, faults):
    waiting = piper_job("Queued before the faults.")
    open_piper_breaker(faults)
    faults.BARK_BREAKER_WHILE_OPEN = "fail"

    response = APIClient().post("/api/bark/synthesize", {"prompt": "New.", "engine": "piper"}, format="json")
    counts = sweep_stale_jobs_task()
    waiting.refresh_from_db()

    assert response.status_code == 503
    assert "piper engine is paused" in response.json()["error"]["message"]
    assert counts["refused"] == 1
    assert waiting.status == Job.Status.FAILED and "piper engine is paused" in waiting.error


# transactional_db: a retry closes the database connection (a dropped one is unusable until closed), which
# would end the transaction a plain `db` test runs in on PostgreSQL.
def test_a_transient_fault_is_retried_with_backoff_and_the_job_completes(transactional_db, faults, caplog):
    inject(faults, "piper:synthesize:oom:2")  # out of memory twice, then it fits

    with caplog.at_level(logging.WARNING, logger="synthesis.jobs.breaker"):
        job = run(piper_job())

    assert (job.status, job.attempts) == (Job.Status.COMPLETED, 1)
    assert sum("transient fault, retry" in message for message in caplog.messages) == 2
    assert breaker.get("piper").failures == 0


def test_a_permanent_fault_is_neither_retried_nor_counted(db, faults, caplog):
    job = Job.objects.create(prompt="Hello.", engine="piper", voice="v2/en_speaker_1", status=Job.Status.QUEUED)

    with caplog.at_level(logging.WARNING, logger="synthesis.jobs.breaker"):
        job = run(job)

    assert job.status == Job.Status.FAILED and "Piper has one voice" in job.error
    assert not any("transient fault" in message for message in caplog.messages)
    assert breaker.get("piper").failures == 0


def test_backoff_grows_exponentially_with_jitter(settings):
    settings.BARK_RETRY_BASE_MS = 1000

    delays = [[breaker.backoff_s(attempt) for _ in range(200)] for attempt in range(4)]

    for attempt, samples in enumerate(delays):
        assert 0.5 * 2**attempt <= min(samples) and max(samples) <= 1.5 * 2**attempt
        assert max(samples) - min(samples) > 0.5 * 2**attempt, "jittered"
