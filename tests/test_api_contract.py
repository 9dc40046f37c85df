"""The published OpenAPI schema is what is served: schemathesis (examples, coverage, fuzzing and stateful
phases, every check) against a live gunicorn of this code, every operation, with a real key."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, call, create_api_key, service_env, web_and_worker

pytestmark = pytest.mark.live

# Bounded to about a minute on 2 CPU cores; every operation still gets its examples and coverage cases.
MAX_TIME_S = 40
EXAMPLES = 15


@pytest.fixture
def server(tmp_path: Path):
    env = service_env(
        tmp_path,
        BARK_MODELS_AVAILABLE="false",  # Piper speaks
        BARK_RATE_LIMIT_PER_MIN="100000",  # the fuzzer is one client; limits have their own tests
        BARK_MAX_PROMPT_CHARS="300",  # short jobs, so streams and /v1/audio/speech end within the timeouts
        BARK_SPEECH_TIMEOUT="20",
    )
    key = create_api_key(env, "schemathesis")
    with web_and_worker(env, tmp_path, "--limit-request-line", "8190") as base:  # jobs finish: the worker runs them
        yield base, key


def test_schemathesis_finds_no_failure_in_any_operation(server, tmp_path):
    base, key = server
    # The schema as served, fetched once with a patient timeout (its first build is slow on a busy machine).
    status, schema = call("GET", f"{base}/api/schema", key=key)
    assert status == 200
    (tmp_path / "schema.yaml").write_bytes(schema if isinstance(schema, bytes) else json.dumps(schema).encode())
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
        "run", str(tmp_path / "schema.yaml"), "--url", base, "--checks", "all", "--max-examples", str(EXAMPLES),
        "--max-time", str(MAX_TIME_S), "--workers", "2", "--seed", "1", "--header", f"X-API-Key: {key}",
        "--request-timeout", "60", "--no-color", "--report", "ndjson", "--report-dir", str(tmp_path / "report"),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=MAX_TIME_S + 120,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    summary = result.stdout[result.stdout.rfind("SUMMARY") :]

    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    found = result.stdout.find("FAILURES")
    assert result.returncode == 0, result.stdout[found if found >= 0 else -15000 :][:15000] + result.stderr[-3000:]
    assert "Selected: 22/22" in summary and "Tested: 22" in summary, summary
    print(summary)
