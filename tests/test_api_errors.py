"""Every answer under /api/ and /v1/ is JSON in the API's shape, whatever failed: an unknown route (also
on POST/DELETE, where Django's CSRF page used to answer), a refused Host header, too many form fields, a
URL too long, Django's debug pages, a crash. Crashes are logged with their traceback to stderr."""

import json
import os
import subprocess
import sys

import pytest
from django.test import Client

from tests.processes import ROOT


def api_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


@pytest.mark.parametrize("method", ["get", "post", "delete", "put"])
def test_an_unknown_api_route_is_a_json_404_for_every_method_even_with_csrf_checks(db, method):
    client = Client(enforce_csrf_checks=True)

    error = api_error(getattr(client, method)("/api/no/such/route"), 404)
    openai = api_error(getattr(client, method)("/v1/no/such/route"), 404)

    assert error["code"] == "not_found" and "/api/docs" in error["message"]
    assert openai["type"] == "invalid_request_error" and openai["code"] == "not_found" and openai["param"] is None


def test_a_host_header_this_server_does_not_answer_for_is_a_json_400(db):
    client = Client(HTTP_HOST="evil.example.com")

    error = api_error(client.get("/api/health"), 400)
    openai = api_error(client.post("/v1/audio/speech", {}, content_type="application/json"), 400)

    assert error == {
        "code": "bad_request",
        "message": "This server does not answer for the host named in the Host header.",
    }
    assert openai["code"] == "bad_request" and openai["type"] == "invalid_request_error"


def test_a_multipart_body_with_more_than_a_thousand_fields_is_a_json_400(db):
    fields = {f"field{i}": "x" for i in range(1001)}

    error = api_error(Client().post("/api/voices", fields), 400)

    assert error == {"code": "bad_request", "message": "The request has too many form fields or files."}


def test_a_url_longer_than_4096_bytes_is_a_json_414(db):
    error = api_error(Client().get("/api/bark/jobs?status=" + "x" * 4100), 414)
    openai = api_error(Client().get("/v1/models/" + "x" * 4100), 414)

    assert error["code"] == "uri_too_long" and openai["code"] == "uri_too_long"


def test_with_debug_on_the_api_still_answers_json_not_djangos_debug_page(db, settings):
    settings.DEBUG = True

    assert api_error(Client().get("/api/no/such/route"), 404)["code"] == "not_found"
    assert api_error(Client(HTTP_HOST="evil.example.com").get("/api/health"), 400)["code"] == "bad_request"


def test_a_wrong_method_keeps_its_allow_header(db):
    response = Client().post("/api/health")

    assert api_error(response, 405)["code"] == "method_not_allowed" and "GET" in response["Allow"]


# A real fault: the database file cannot be opened. The request runs in a fresh process configured
# exactly as the service is, so what reaches stderr is what an operator sees.
CRASH = """
import django, json, os
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
for path in ("/api/bark/jobs", "/v1/models", "/accounts/login/"):
    response = client.post(path, {"username": "ada", "password": "x"}) if "login" in path else client.get(path)
    print(json.dumps({"path": path, "status": response.status_code, "type": response["Content-Type"],
                      "body": response.content.decode()[:2000]}))
"""


def test_a_crash_is_a_json_500_under_the_api_a_branded_page_elsewhere_and_logged_with_its_traceback(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "barksite.settings"}
    env.pop("DATABASE_URL", None)
    env["BARK_SQLITE_PATH"] = str(tmp_path / "missing" / "db.sqlite3")  # its directory does not exist

    result = subprocess.run(
        [sys.executable, "-c", CRASH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    answers = {line["path"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert answers["/api/bark/jobs"]["status"] == 500 and answers["/api/bark/jobs"]["type"] == "application/json"
    assert json.loads(answers["/api/bark/jobs"]["body"])["error"]["code"] == "server_error"
    assert json.loads(answers["/v1/models"]["body"])["error"]["type"] == "server_error"
    page = answers["/accounts/login/"]  # signing in reads the user table
    assert page["status"] == 500 and "Something went wrong" in page["body"] and 'href="/"' in page["body"]
    assert "ERROR django.request: Internal Server Error: /api/bark/jobs" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr and "unable to open database file" in result.stderr
