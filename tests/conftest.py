"""Shared fixtures. Everything here builds real objects: real engines, real files, real rows."""

from pathlib import Path

import pytest

from synthesis.engines import reset_engines
from synthesis.jobs import JobRequest, submit_job

# The Bark checkpoint (built once per session) and the web fixtures (users, finished jobs).
pytest_plugins = ["tests.fixtures_bark", "tests.fixtures_web"]


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path: Path) -> Path:
    """Each test writes artifacts and rate-limit counters under its own temporary directory."""
    settings.MEDIA_ROOT = tmp_path / "outputs"
    settings.CACHES = {"default": {"BACKEND": "diskcache.DjangoCache", "LOCATION": str(tmp_path / "cache")}}
    return settings.MEDIA_ROOT


@pytest.fixture
def piper_job(db):
    """A queued Piper job, recorded exactly as a real submission records it. Its task is sent on commit,
    which never comes inside a test transaction, so the test plays the worker."""
    return submit_job(JobRequest(prompt="Hello there. This is a test.", engine="piper", seed=1))


@pytest.fixture
def tiny_bark(settings, tiny_bark_dir: Path):
    """Point BARK_MODEL at the tiny random-weight checkpoint the project builds, with fresh engines."""
    settings.BARK_MODEL = str(tiny_bark_dir)
    reset_engines()
    yield tiny_bark_dir
    reset_engines()
