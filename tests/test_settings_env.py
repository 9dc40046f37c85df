import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from barksite.env import local_secret_key

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
        ("BARK_DTYPE", "fp8", "BARK_DTYPE='fp8' is not one of auto, bfloat16, float16, float32, int8"),
        ("BARK_MODELS_AVAILABLE", "sometimes", "BARK_MODELS_AVAILABLE='sometimes' must be auto"),
        ("DATABASE_URL", "nonsense://x", "DATABASE_URL is not a valid database URL"),
        ("BARK_BROKER_URL", "amqp://127.0.0.1", "BARK_BROKER_URL='amqp://127.0.0.1' is not a Redis URL"),
        ("BARK_BREAKER_WHILE_OPEN", "panic", "BARK_BREAKER_WHILE_OPEN='panic' is not one of fail, queue"),
        ("BARK_COARSE_WINDOW", "200", "BARK_COARSE_WINDOW=200 is out of range; it must be between 60 and 138"),
        ("BARK_FINE_WINDOW", "half", "BARK_FINE_WINDOW='half' is not one of full, real"),
        ("BARK_TOP_K", "many", "BARK_TOP_K='many' is not a whole number"),
        ("BARK_TOP_P", "0", "BARK_TOP_P=0.0 is out of range; it must be above 0.0 and at most 1.0"),
        ("BARK_MIN_EOS_P", "high", "BARK_MIN_EOS_P='high' is not a number; set it like BARK_MIN_EOS_P=1.0"),
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


# The production configuration the README documents: a secret, the public host name, its https origin.
PRODUCTION = {
    "DJANGO_SECRET_KEY": "x7Lq9-production-secret-for-the-test-only-3Jd8Kp2Vw5Nz1Rt6Yb4Hm0Gc",
    "DJANGO_ALLOWED_HOSTS": "bark.example.org",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://bark.example.org",
}
SHOW_SECURITY = (
    "from django.conf import settings as s; import json; print(json.dumps([s.DEBUG, s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, getattr(s, 'SECURE_PROXY_SSL_HEADER', None)]))"
)


def security_settings(**env: str) -> list:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW_SECURITY],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_documented_production_configuration_passes_check_deploy_at_warning_level():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**os.environ, **PRODUCTION}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_is_https_behind_a_proxy_and_a_local_run_is_plain_http_without_debug():
    assert security_settings(**PRODUCTION) == [False, True, True, True, 31_536_000, ["HTTP_X_FORWARDED_PROTO", "https"]]
    # bin/serve and the tests: 127.0.0.1 over plain HTTP, where Secure cookies would make signing in fail.
    assert security_settings() == [False, False, False, False, 0, None]
    assert security_settings(DJANGO_DEBUG="true")[0] is True


def test_a_local_run_makes_its_secret_key_once_and_keeps_it_private(tmp_path):
    path = tmp_path / "state" / "secret_key"

    first, second = local_secret_key(path), local_secret_key(path)

    assert first == second and len(first) >= 50
    assert path.stat().st_mode & 0o777 == 0o600
