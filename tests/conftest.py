"""Shared fixtures. Everything here builds real objects: real engines, real files, real rows."""

import runpy
import uuid
from pathlib import Path

import pytest

from synthesis.engines import reset_engines
from synthesis.jobs.submit import JobRequest, submit_job
from tests.s3 import create_bucket, moto_server, s3_env

# The Bark checkpoint (built once per session) and the web fixtures (users, finished jobs).
pytest_plugins = ["tests.fixtures_bark", "tests.fixtures_web"]
SETTINGS_FILE = Path(__file__).resolve().parent.parent / "barksite" / "settings.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Live tests first: they spend much of their time waiting on the servers they start, and begun early those
    waits overlap the CPU-bound tests that follow on the other test workers, instead of leaving cores idle at the
    end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("live") is None)  # a stable sort keeps each group's order


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path: Path) -> Path:
    """Each test writes artifacts and rate-limit counters under its own temporary directory."""
    settings.MEDIA_ROOT = tmp_path / "outputs"
    settings.CACHES = {"default": {"BACKEND": "diskcache.DjangoCache", "LOCATION": str(tmp_path / "cache")}}
    # Django's default hasher takes 0.6 s per password on these CPUs, and a hundred tests create or check one.
    # (Servers started by the live tests keep the real hasher.)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
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


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """moto's S3 server on a free loopback port, one per test process, started on first use."""
    with moto_server(log=tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def s3_storage(settings, monkeypatch, s3_endpoint: str) -> str:
    """Artifacts in a fresh bucket of the S3 server, configured from the environment exactly as an operator
    would (settings.py evaluated with BARK_S3_BUCKET and the AWS_* variables set); returns the bucket."""
    bucket = f"bark-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_endpoint, bucket)
    for name, value in s3_env(s3_endpoint, bucket).items():
        monkeypatch.setenv(name, value)
    configured = runpy.run_path(str(SETTINGS_FILE))
    settings.STORAGES = {**settings.STORAGES, "default": configured["STORAGES"]["default"]}
    settings.BARK_S3_BUCKET = bucket
    return bucket


@pytest.fixture(params=["filesystem", "s3"])
def artifact_storage(request) -> str:
    """Run a test once with artifacts on the local disk (the default) and once in an S3 bucket."""
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return request.param
