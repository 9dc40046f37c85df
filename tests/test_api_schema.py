"""The OpenAPI schema at /api/schema validates and covers every route; /api/docs works offline."""

import re

import yaml
from django.core.management import call_command

from tests.api_helpers import client

ROUTES = {
    "/api/health": {"get"},
    "/api/capabilities": {"get"},
    "/api/bark/synthesize": {"post"},
    "/api/bark/jobs": {"get"},
    "/api/bark/jobs/{job_id}": {"get"},
    "/api/bark/jobs/{job_id}/artifacts/{name}": {"get"},
    "/api/bark/jobs/{job_id}/cancel": {"post"},
    "/v1/audio/speech": {"post"},
    "/v1/audio/voices": {"post"},
    "/v1/audio/voices/{voice_id}": {"delete"},
    "/v1/audio/voice_consents": {"get", "post"},
    "/v1/audio/voice_consents/{consent_id}": {"get", "post", "delete"},
    "/v1/models": {"get"},
}


def test_the_schema_passes_drf_spectaculars_openapi_validation_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    for route, methods in ROUTES.items():
        assert methods <= set(schema["paths"][route]), route


def test_the_schema_documents_errors_auth_and_the_request_fields(db):
    response = client().get("/api/schema", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    synthesize = schema["paths"]["/api/bark/synthesize"]["post"]
    assert {"200", "201", "400", "401", "413", "429", "503"} <= set(synthesize["responses"])
    assert synthesize["responses"]["429"]["description"].endswith("see the Retry-After header.")
    assert synthesize["security"] == [{"ApiKeyHeader": []}, {"BearerKey": []}, {"cookieAuth": []}]
    assert schema["components"]["securitySchemes"]["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    request = schema["components"]["schemas"]["SynthesisRequest"]
    assert request["required"] == ["prompt"]
    assert {"text_temp", "waveform_temp", "control_events", "routing_priorities", "video", "output_path"} <= set(
        request["properties"]
    )
    assert "security" not in schema["paths"]["/api/health"]["get"] and "security" not in schema  # public


def test_the_docs_page_loads_its_assets_from_this_server_not_a_cdn(db):
    for path in ("/api/docs", "/api/redoc"):
        page = client().get(path).content.decode()
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources and all(src.startswith("/static/") for src in sources if src.endswith((".js", ".css"))), sources
        assert "cdn.jsdelivr" not in page and "unpkg.com" not in page
