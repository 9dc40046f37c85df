"""GET /api/bark/jobs/{job_id}: a job's state, plan, progress and artifacts, to its owner only."""

import uuid

import pytest

from synthesis.models import Job
from tests.api_helpers import SPEECH, client, error_of, keyed_client, run


@pytest.fixture
def api(db):
    return keyed_client()[0]


def test_a_dry_run_round_trips_planned_with_its_plan(api):
    submitted = api.post("/api/bark/synthesize", {"prompt": "hello", "dry_run": True, "engine": "piper"}, format="json")

    response = api.get(f"/api/bark/jobs/{submitted.json()['job_id']}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "planned" and body["plan"] == submitted.json()["plan"]
    assert body["plan"]["segments"] == ["hello"] and body["artifacts"] == {} and body["error"] is None


def test_a_completed_job_shows_progress_timings_and_artifact_urls(api):
    job = run(api.post("/api/bark/synthesize", SPEECH, format="json").json()["job_id"])

    body = api.get(f"/api/bark/jobs/{job.id}").json()

    assert body["status"] == "completed"
    assert body["progress"] == {"segments_done": 1, "segments_total": 1, "fraction": 1.0, "stage": ""}
    assert (body["engine"], body["model"], body["device"], body["sample_rate"]) == (
        "piper", "en_US-joe-medium", "cpu", 22050,
    )  # fmt: skip
    assert body["dtype"] == ""  # Piper has no choice of number format
    assert body["engine_settings"] == ""  # nor any setting that changes its output
    assert body["duration_s"] == pytest.approx(job.duration_s) and body["attempts"] == 1
    assert body["submitted_at"] <= body["started_at"] <= body["completed_at"] and body["failed_at"] is None
    base = f"http://testserver/api/bark/jobs/{job.id}/artifacts"
    assert body["artifacts"] == {"audio": f"{base}/audio", "metadata": f"{base}/metadata"}


def test_a_failed_job_shows_its_error(api, monkeypatch):
    from synthesis.engines import EngineFailed
    from synthesis.engines.piper.engine import PiperEngine

    def broken(self, segments, options, on_segment=None):
        raise EngineFailed("the voice broke")

    monkeypatch.setattr(PiperEngine, "synthesize", broken)
    job = run(api.post("/api/bark/synthesize", SPEECH, format="json").json()["job_id"])

    body = api.get(f"/api/bark/jobs/{job.id}").json()

    assert body["status"] == "failed" and body["error"] == "the voice broke" and body["failed_at"]


def test_another_keys_job_is_404_exactly_like_an_unknown_one(api):
    theirs, _ = keyed_client("someone else")
    job_id = theirs.post("/api/bark/synthesize", {**SPEECH, "dry_run": True}, format="json").json()["job_id"]

    hidden = api.get(f"/api/bark/jobs/{job_id}")
    unknown = api.get(f"/api/bark/jobs/{uuid.uuid4()}")

    assert hidden.status_code == unknown.status_code == 404
    assert error_of(hidden) == {"code": "not_found", "message": f"There is no job {job_id} visible to this caller."}
    assert theirs.get(f"/api/bark/jobs/{job_id}").status_code == 200


def test_the_shared_key_sees_jobs_without_a_key_but_not_those_of_keys(db, settings):
    settings.BARK_API_KEY = "operator-secret"
    keyed, _ = keyed_client()
    operator = client("operator-secret")
    mine = operator.post("/api/bark/synthesize", {**SPEECH, "dry_run": True}, format="json").json()["job_id"]
    theirs = keyed.post("/api/bark/synthesize", {**SPEECH, "dry_run": True}, format="json").json()["job_id"]

    assert operator.get(f"/api/bark/jobs/{mine}").status_code == 200
    assert operator.get(f"/api/bark/jobs/{theirs}").status_code == 404
    assert keyed.get(f"/api/bark/jobs/{mine}").status_code == 404


@pytest.mark.parametrize("job_id", ["not-a-uuid", "1234", "..%2F..%2Fetc"])
def test_a_job_id_that_is_not_a_uuid_is_a_json_404(api, job_id):
    response = api.get(f"/api/bark/jobs/{job_id}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_job_status_needs_a_key(api):
    job = Job.objects.create(prompt="x", engine="piper")

    assert client().get(f"/api/bark/jobs/{job.id}").status_code == 401
