"""GET /api/health: liveness plus database, queue, cache and engine checks; 503 when the database or
queue is down."""

from django.core.cache import cache
from django.db import connection
from django.db.utils import OperationalError

from tests.api_helpers import client


def test_health_is_ok_with_version_time_and_every_check(db):
    response = client().get("/api/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["version"] == "0.1.0" and body["time"].endswith("+00:00")
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "vendor": connection.vendor}  # sqlite, or postgresql in CI
    assert checks["queue"]["ok"] and checks["queue"]["queued_jobs"] == 0 and checks["queue"]["clusters"] == 0
    assert "manage.py runworkers" in checks["queue"]["note"]
    assert checks["cache"]["ok"]
    engines = {engine["name"]: engine for engine in checks["engines"]}
    assert engines["piper"]["ok"] and engines["piper"]["reason"] == "ready"
    assert set(engines) == {"bark", "piper"}


def test_health_shows_the_bark_runners_state_loading_then_ready(db):
    from synthesis.engines.bark.protocol import STATE_KEY

    def runner() -> dict:
        engines = {engine["name"]: engine for engine in client().get("/api/health").json()["checks"]["engines"]}
        return engines["bark"]["runner"]

    assert runner() == {"state": "not running"}
    cache.set(STATE_KEY, {"state": "loading", "pid": 42}, 30)
    assert runner() == {"state": "loading", "pid": 42}
    cache.set(STATE_KEY, {"state": "ready", "pid": 42, "device": "cpu"}, 30)
    assert runner()["state"] == "ready"


def test_health_counts_queued_jobs(db):
    api = client()
    api.post("/api/bark/synthesize", {"prompt": "Hi.", "engine": "piper"}, format="json")

    assert api.get("/api/health").json()["checks"]["queue"]["queued_jobs"] == 1


def test_health_is_503_when_the_queue_tables_are_unreachable(db, monkeypatch):
    from django_q.models import OrmQ

    def down(*args, **kwargs):
        raise OperationalError("no such table: django_q_ormq")

    monkeypatch.setattr(type(OrmQ.objects), "count", down)

    response = client().get("/api/health")

    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["checks"]["queue"] == {
        "ok": False,
        "error": "OperationalError: no such table: django_q_ormq",
    }


def test_health_is_503_when_the_database_is_down(db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("unable to open database file")

    with monkeypatch.context() as patch:  # undone before the test database is torn down
        patch.setattr(connection, "cursor", refuse)
        response = client().get("/api/health")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "error": "OperationalError: unable to open database file",
    }


def test_health_is_degraded_but_200_when_no_engine_can_run(db, monkeypatch):
    from synthesis.engines.piper.engine import PiperEngine

    monkeypatch.setattr(PiperEngine, "_missing", lambda self: "switched off")

    response = client().get("/api/health")

    assert response.status_code == 200 and response.json()["status"] == "degraded"
