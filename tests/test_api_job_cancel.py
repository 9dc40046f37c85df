"""POST /api/bark/jobs/{job_id}/cancel."""

import pytest

from synthesis.models import Job
from tests.api_helpers import SPEECH, error_of, keyed_client, run


@pytest.fixture
def api(db):
    return keyed_client()[0]


def test_cancelling_a_queued_job_cancels_it_and_its_worker_then_skips_it(api):
    job_id = api.post("/api/bark/synthesize", SPEECH, format="json").json()["job_id"]

    response = api.post(f"/api/bark/jobs/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["cancelled_at"]
    job = run(job_id)
    assert job.status == Job.Status.CANCELLED and job.attempts == 0 and not job.audio


def test_cancelling_twice_is_not_an_error(api):
    job_id = api.post("/api/bark/synthesize", SPEECH, format="json").json()["job_id"]
    api.post(f"/api/bark/jobs/{job_id}/cancel")

    assert api.post(f"/api/bark/jobs/{job_id}/cancel").status_code == 200


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_finished_or_planned_job_cannot_be_cancelled_409(api, dry_run):
    job_id = api.post("/api/bark/synthesize", {**SPEECH, "dry_run": dry_run}, format="json").json()["job_id"]
    if not dry_run:
        run(job_id)

    response = api.post(f"/api/bark/jobs/{job_id}/cancel")

    assert response.status_code == 409
    status = "planned" if dry_run else "completed"
    assert error_of(response) == {
        "code": "conflict",
        "message": f"Job {job_id} is {status}; only queued or running jobs can be cancelled.",
    }
    assert Job.objects.get(pk=job_id).status == status


def test_another_keys_job_cannot_be_cancelled(api):
    job_id = api.post("/api/bark/synthesize", SPEECH, format="json").json()["job_id"]
    other, _ = keyed_client("other")

    assert other.post(f"/api/bark/jobs/{job_id}/cancel").status_code == 404
    assert Job.objects.get(pk=job_id).status == Job.Status.QUEUED
