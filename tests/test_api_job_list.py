"""GET /api/bark/jobs: the caller's jobs, newest first, paginated, filtered by status; dry runs only when asked."""

from datetime import timedelta

import pytest
from django.utils import timezone

from synthesis.models import Job
from tests.api_helpers import client, error_of, keyed_client


@pytest.fixture
def mine(db):
    api, api_key = keyed_client()
    now = timezone.now()
    statuses = ["planned", "queued", "completed", "failed", "queued"]
    jobs = [
        Job.objects.create(
            prompt=f"job {i}", engine="piper", status=s, api_key=api_key, submitted_at=now - timedelta(minutes=i)
        )
        for i, s in enumerate(statuses)
    ]
    return api, jobs


def ids(response) -> list[str]:
    return [job["job_id"] for job in response.json()["results"]]


def test_lists_only_the_callers_jobs_newest_first_without_dry_runs(mine):
    api, jobs = mine
    _, other_key = keyed_client("other")
    Job.objects.create(prompt="not mine", engine="piper", api_key=other_key)

    response = api.get("/api/bark/jobs")

    assert response.status_code == 200
    assert response.json()["count"] == 4
    assert ids(response) == [str(job.id) for job in jobs[1:]]


def test_dry_runs_are_listed_when_asked_for(mine):
    api, jobs = mine

    assert ids(api.get("/api/bark/jobs?status=planned")) == [str(jobs[0].id)]


def test_pages_with_limit_and_offset(mine):
    api, jobs = mine

    first = api.get("/api/bark/jobs?limit=2").json()
    second = api.get(first["next"]).json()

    assert [j["job_id"] for j in first["results"]] == [str(jobs[1].id), str(jobs[2].id)]
    assert [j["job_id"] for j in second["results"]] == [str(jobs[3].id), str(jobs[4].id)]
    assert first["previous"] is None and second["previous"].endswith("limit=2")
    assert api.get("/api/bark/jobs?limit=1000").json()["results"].__len__() == 4  # capped at 100, not refused


def test_filters_by_status(mine):
    api, jobs = mine

    response = api.get("/api/bark/jobs?status=queued")

    assert ids(response) == [str(jobs[1].id), str(jobs[4].id)]


def test_an_unknown_status_filter_is_a_400(mine):
    api, _ = mine

    response = api.get("/api/bark/jobs?status=done")

    assert response.status_code == 400
    assert "Unknown status 'done'" in error_of(response)["fields"]["status"][0]


def test_listing_needs_a_key_once_keys_exist(mine):
    assert client().get("/api/bark/jobs").status_code == 401
