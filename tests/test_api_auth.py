"""Who may call the API: database keys (X-API-Key or Bearer), the shared BARK_API_KEY, session users, and
an open API only while no key exists."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from synthesis.models import ApiKey, Job
from tests.api_helpers import SPEECH, client, error_of, keyed_client, new_key

PLAN = {**SPEECH, "dry_run": True}


def test_with_no_key_in_the_database_the_api_is_open_and_says_so(db):
    response = client().post("/api/bark/synthesize", PLAN, format="json")

    assert response.status_code == 200
    job = Job.objects.get()
    assert job.api_key is None and job.owner is None
    assert client().get("/api/capabilities").json()["auth"]["mode"] == "open"


@pytest.mark.parametrize("path", ["/api/bark/synthesize", "/api/bark/jobs", "/v1/audio/speech", "/v1/models"])
def test_once_a_key_exists_a_request_without_one_gets_401_with_www_authenticate(db, path):
    new_key()
    api = client()

    response = api.post(path, PLAN, format="json") if "synth" in path or "speech" in path else api.get(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="barksite"'
    body = response.json()["error"]
    assert body["code"] == "not_authenticated" and "X-API-Key" in body["message"]
    assert Job.objects.count() == 0


JOB = "00000000-0000-0000-0000-000000000001"
PROTECTED = [
    ("post", "/api/bark/synthesize"),
    ("get", "/api/bark/jobs"),
    ("get", f"/api/bark/jobs/{JOB}"),
    ("get", f"/api/bark/jobs/{JOB}/artifacts/audio"),
    ("post", f"/api/bark/jobs/{JOB}/cancel"),
    ("post", "/v1/audio/speech"),
    ("get", "/v1/models"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_protected_route_refuses_a_missing_wrong_or_revoked_key_with_401(db, method, path):
    revoked, revoked_raw = new_key("revoked")
    revoked.revoked = True
    revoked.save()

    for api in (client(), client("wrong.key"), client(revoked_raw, bearer=True)):
        response = getattr(api, method)(path, PLAN, format="json") if method == "post" else api.get(path)
        assert response.status_code == 401, (path, response.content)
        assert response["WWW-Authenticate"] == 'Bearer realm="barksite"'
    assert Job.objects.count() == 0


def test_a_key_works_in_x_api_key_and_as_a_bearer_token(db):
    _, raw = new_key()

    assert client(raw).post("/api/bark/synthesize", PLAN, format="json").status_code == 200
    assert client(raw, bearer=True).post("/api/bark/synthesize", PLAN, format="json").status_code == 200
    assert Job.objects.filter(api_key__isnull=False).count() == 2


def test_a_wrong_key_gets_401_and_creates_nothing(db):
    _, raw = new_key()
    prefix = raw.partition(".")[0]

    for wrong in ("not-a-key", f"{prefix}.wrongsecret", "x" * 500):
        response = client(wrong).post("/api/bark/synthesize", PLAN, format="json")
        assert response.status_code == 401
        assert error_of(response) == {"code": "authentication_failed", "message": "Unknown API key."}
    assert Job.objects.count() == 0


def test_a_revoked_key_gets_401_saying_so(db):
    api_key, raw = new_key()
    api_key.revoked = True
    api_key.save()

    response = client(raw).get("/api/bark/jobs")

    assert response.status_code == 401
    assert error_of(response)["message"] == "This API key has been revoked."


def test_revoking_every_key_does_not_open_the_api(db):
    api_key, _ = new_key()
    ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)

    assert client().get("/api/bark/jobs").status_code == 401


def test_an_expired_key_gets_401_saying_so(db):
    _, raw = new_key(expiry_date=timezone.now() - timedelta(days=1))

    response = client(raw).get("/api/bark/jobs")

    assert response.status_code == 401
    assert error_of(response)["message"] == "This API key has expired."


def test_using_a_key_records_when_it_was_last_used_at_most_once_a_minute(db):
    api, api_key = keyed_client()

    api.get("/api/bark/jobs")
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    api.get("/api/bark/jobs")

    assert first is not None
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first


def test_the_shared_bark_api_key_is_accepted_and_anything_else_is_not(db, settings):
    settings.BARK_API_KEY = "operator-secret"

    assert client("operator-secret").post("/api/bark/synthesize", PLAN, format="json").status_code == 200
    assert client("operator-secret", bearer=True).get("/api/bark/jobs?status=planned").json()["count"] == 1
    assert client("operator-secreT").get("/api/bark/jobs").status_code == 401
    assert client().get("/api/bark/jobs").status_code == 401
    assert client().get("/api/capabilities").json()["auth"]["mode"] == "key"


def test_a_signed_in_user_may_use_the_api_and_owns_what_they_submit(db):
    new_key()  # the API is closed
    user = get_user_model().objects.create_user("ada", password="pw-for-tests-only")
    api = client()
    api.force_login(user)

    response = api.post("/api/bark/synthesize", PLAN, format="json")

    assert response.status_code == 200
    assert Job.objects.get().owner == user
    assert api.get("/api/bark/jobs?status=planned").json()["count"] == 1


def test_a_signed_in_user_must_send_the_csrf_token_like_any_form(db):
    user = get_user_model().objects.create_user("ada", password="pw-for-tests-only")
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(user)

    response = api.post("/api/bark/synthesize", PLAN, format="json")

    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"
    assert Job.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/health", "/api/capabilities", "/api/schema", "/api/docs"])
def test_health_capabilities_schema_and_docs_are_public_even_with_a_wrong_key(db, path):
    new_key()

    assert client().get(path).status_code == 200
    assert client("wrong.key").get(path).status_code == 200
