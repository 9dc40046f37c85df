"""`manage.py create_api_key`."""

import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from synthesis.models import ApiKey
from tests.api_helpers import client


def printed_key(out: str) -> str:
    return re.search(r"^    (\S+\.\S+)$", out, re.MULTILINE)[1]


def test_creates_a_hashed_key_prints_it_once_and_the_key_works(db, capsys):
    call_command("create_api_key", "ci robot")

    out = capsys.readouterr().out
    key = printed_key(out)
    api_key = ApiKey.objects.get()
    assert api_key.name == "ci robot" and api_key.rate_limit_per_min is None and api_key.expiry_date is None
    assert key.startswith(api_key.prefix + ".") and key not in (api_key.pk, api_key.hashed_key)
    assert "it is not shown again" in out and "X-API-Key: <key>" in out
    assert client(key).get("/api/bark/jobs").status_code == 200
    assert client().get("/api/bark/jobs").status_code == 401


def test_rate_limit_and_expiry_are_recorded(db, capsys):
    call_command("create_api_key", "batch", "--rate-limit", "5", "--expires-days", "30")

    api_key = ApiKey.objects.get()
    assert api_key.rate_limit_per_min == 5
    assert api_key.expiry_date - timezone.now() == pytest.approx(timedelta(days=30), abs=timedelta(minutes=1))
    assert "(5 requests/min, expires " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "NAME must not be blank"),
        (["x" * 51], "NAME has 51 characters; the limit is 50."),
        (["robot", "--rate-limit", "0"], "--rate-limit must be a whole number"),
        (["robot", "--expires-days", "-1"], "--expires-days must be at least 1."),
    ],
)
def test_bad_input_fails_with_a_clear_message_and_creates_nothing(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("create_api_key", *args)

    assert ApiKey.objects.count() == 0


def test_a_non_numeric_rate_limit_is_a_usage_error():
    with pytest.raises(CommandError, match="invalid int value"):
        call_command("create_api_key", "robot", "--rate-limit", "many")


def test_quiet_prints_only_the_key_for_scripts(db, capsys):
    call_command("create_api_key", "script", "--quiet")

    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert client(out.strip()).get("/api/bark/jobs").status_code == 200


def test_the_example_names_the_port_bin_serve_uses(db, capsys, monkeypatch):
    monkeypatch.setenv("PORT", "8123")
    call_command("create_api_key", "port")
    assert "http://127.0.0.1:8123/api/bark/jobs" in capsys.readouterr().out

    call_command("create_api_key", "url", "--url", "https://tts.example.org/")
    assert "https://tts.example.org/api/bark/jobs" in capsys.readouterr().out
