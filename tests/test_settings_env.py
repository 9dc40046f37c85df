import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BARK_MAX_QUEUE_SIZE", "abc", "BARK_MAX_QUEUE_SIZE='abc' is not a whole number"),
        ("BARK_MAX_CONCURRENCY", "0", "BARK_MAX_CONCURRENCY=0 is out of range"),
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not a boolean"),
        ("BARK_DEVICE", "tpu", "BARK_DEVICE='tpu' is not one of auto, cpu, cuda, mps"),
        ("BARK_MODELS_AVAILABLE", "sometimes", "BARK_MODELS_AVAILABLE='sometimes' must be auto"),
        ("DATABASE_URL", "nonsense://x", "DATABASE_URL is not a valid database URL"),
        ("BARK_BROKER_URL", "amqp://127.0.0.1", "BARK_BROKER_URL='amqp://127.0.0.1' is not a Redis URL"),
        ("BARK_BREAKER_WHILE_OPEN", "panic", "BARK_BREAKER_WHILE_OPEN='panic' is not one of fail, queue"),
    ],
)
def test_a_bad_environment_variable_stops_start_up_with_a_message_naming_it(variable, value, message):
    result = run_check(**{variable: value})

    assert result.returncode != 0
    assert message in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_production_mode_without_a_secret_key_refuses_to_start():
    result = run_check(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="", DJANGO_ALLOWED_HOSTS="example.org")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_default_environment_passes_the_system_checks():
    result = run_check()

    assert result.returncode == 0, result.stderr
