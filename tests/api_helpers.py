"""Helpers shared by the API tests: real keys, real clients, real job runs."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from synthesis.models import ApiKey, Job
from synthesis.tasks import run_job_task

SPEECH = {"prompt": "Hello there. This is a test.", "engine": "piper"}

events: list[tuple[str, dict[str, Any]]] = []


def record_event(event: str, payload: dict[str, Any]) -> None:
    """A BARK_LOG_HOOK for tests: remembers every lifecycle event."""
    events.append((event, payload))


def new_key(name: str = "client", **fields: Any) -> tuple[ApiKey, str]:
    return ApiKey.objects.create_key(name=name, **fields)


def client(key: str | None = None, *, bearer: bool = False) -> APIClient:
    api = APIClient()
    if key is not None:
        api.credentials(**({"HTTP_AUTHORIZATION": f"Bearer {key}"} if bearer else {"HTTP_X_API_KEY": key}))
    return api


def keyed_client(name: str = "client", **fields: Any) -> tuple[APIClient, ApiKey]:
    api_key, raw = new_key(name, **fields)
    return client(raw), api_key


def run(job_id: str) -> Job:
    """Run a queued job the way a worker does, and return its row."""
    run_job_task(job_id)
    return Job.objects.get(pk=job_id)


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]
