"""The services every host shares fail while 4 jobs run and 4 wait (gunicorn and runworkers, real processes, the
test's own PostgreSQL, Redis and S3 server on free loopback ports: tests/outages.py), and nothing is lost, nothing
completes twice, no process is restarted by hand:
- PostgreSQL stopped, or the SQLite file locked by another writer: /api/health answers 503 meanwhile and 200 after,
  a submission gets a JSON 503 with Retry-After, the workers and the web reconnect by themselves;
- Redis (broker and cache) stopped: the same (rate limiting fails closed: a rate-limited route answers 503 with
  Retry-After until Redis is back; BARK_RATE_LIMIT_FAIL_OPEN=true lets requests through uncounted instead);
- the S3 bucket unreachable during uploads: a short outage is covered by the transient retry, a long one fails the
  jobs with a readable error and Retry runs them again to completion;
- the output disk full: jobs fail with "No space left", point at no artifact, and the workers carry on.
Figures for the README come from bench/faults.py, which runs the same scenarios with 30 s outages."""

import pytest

from tests.outages import Outcome, run_outage, tmpfs_refused

pytestmark = [pytest.mark.live, pytest.mark.outages]

# Shorter than bench/faults.py's (30 s outages, 16-sentence jobs) to keep the suite's time; the same paths.
OUTAGE_S, SENTENCES = 10, 8


def assert_nothing_lost(outcome: Outcome) -> None:
    assert outcome.lost == [], f"jobs lost; logs in {outcome.logs}"
    assert outcome.twice == [], "a job completed twice"
    assert outcome.processes_restarted == 0, "a service process exited"
    assert outcome.health_after == 200


@pytest.mark.parametrize("kind", ["postgres", "sqlite-lock", "redis"])
def test_while_a_shared_service_is_out_health_and_submissions_answer_503_and_every_job_completes_once(tmp_path, kind):
    outcome = run_outage(kind, tmp_path, OUTAGE_S, SENTENCES)

    assert_nothing_lost(outcome)
    assert outcome.health_during == {503}
    assert outcome.submissions_during, "a submission was tried during the outage"
    for status, content_type, retry_after in outcome.submissions_during:
        assert (status, content_type) == (503, "application/json") and int(retry_after) > 0
    assert outcome.first_completion_after_s is not None


def test_a_short_s3_outage_is_covered_by_the_transient_retry(tmp_path):
    outcome = run_outage("s3-short", tmp_path, 2, SENTENCES)

    assert_nothing_lost(outcome)
    assert outcome.failed == {}, "no job failed: the retry covered the outage"


def test_a_long_s3_outage_fails_jobs_readably_and_retry_completes_them(tmp_path):
    outcome = run_outage("s3-long", tmp_path, OUTAGE_S, SENTENCES)  # and on until it has failed a job

    assert_nothing_lost(outcome)  # after the operator's Retry
    assert outcome.failed, "the outage outlasted the retries"
    for error in outcome.failed.values():
        assert error.startswith("The artifact storage could not be reached") and "retry the job" in error


@pytest.mark.skipif(bool(tmpfs_refused()), reason=str(tmpfs_refused()))
def test_a_full_disk_fails_jobs_in_plain_words_with_nothing_half_written_and_the_workers_carry_on(tmp_path):
    outcome = run_outage("disk-full", tmp_path, 2, SENTENCES)

    assert_nothing_lost(outcome)  # after space was freed and the jobs retried, by the same workers
    assert outcome.failed, "the disk filled up"
    for job_id, error in outcome.failed.items():
        assert "No space left" in error and "BARK_OUTPUT_ROOT" in error
        assert outcome.failed_artifacts[job_id] == {}, "a failed job points at no artifact"
