"""deploy/: what can be checked on this machine. The systemd units parse (systemd-analyze verify), the compose
file is valid (docker compose config, else its YAML and references), the environment template is accepted
by settings.py, and the alerts and dashboard query only metrics that /metrics really serves."""

import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import SETTINGS_FILE

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SETTINGS_TEXT = SETTINGS_FILE.read_text()
# Read by something other than settings.py: prometheus-client, CUDA, Hugging Face.
EXTERNAL_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "CUDA_VISIBLE_DEVICES", "HF_HOME"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_units_parse_and_name_commands_that_exist(tmp_path):
    units = []
    for unit in (DEPLOY / "systemd").glob("*.service"):
        # Installed, the code lives in /opt/barksite; here it is this checkout (same layout, same .venv).
        name = unit.name.replace("@.", "@0.")  # a template is checked as one instance (GPU 0)
        (tmp_path / name).write_text(unit.read_text().replace("/opt/barksite", str(ROOT)))
        units.append(str(tmp_path / name))

    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)

    assert len(units) == 3
    problems = [line for line in result.stderr.splitlines() if "barksite" in line or "Unknown" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_each_worker_instance_is_pinned_to_its_gpu():
    unit = (DEPLOY / "systemd" / "barksite-worker@.service").read_text()

    assert "Environment=CUDA_VISIBLE_DEVICES=%i" in unit
    assert "EnvironmentFile=/etc/barksite/barksite.env" in unit


def test_the_environment_template_is_accepted_by_settings(monkeypatch):
    variables = dict(
        line.split("=", 1)
        for line in (DEPLOY / "barksite.env.example").read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    unknown = {name for name in variables if name not in SETTINGS_TEXT} - EXTERNAL_VARIABLES
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    configured = runpy.run_path(str(SETTINGS_FILE))

    assert not unknown, f"not read by barksite/settings.py: {unknown}"
    assert configured["STORAGES"]["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert configured["DATABASES"]["default"]["HOST"] == "db.internal"
    assert configured["DEBUG"] is False


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_is_valid():
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True) if docker else None
    if probe is None or probe.returncode != 0:
        pytest.skip("docker compose is not installed here; the YAML and its references are checked below instead")
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_fleet_has_every_service_and_only_known_settings():
    spec = compose()
    services = spec["services"]

    assert {"postgres", "redis", "minio", "web", "worker"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    environment = spec["x-barksite-env"]
    assert environment is services["web"]["environment"] is services["worker"]["environment"]
    unknown = {name for name in environment if name not in SETTINGS_TEXT} - EXTERNAL_VARIABLES
    assert not unknown, f"not read by barksite/settings.py: {unknown}"
    assert environment["AWS_S3_ENDPOINT_URL"] == "http://minio:9000" and environment["DATABASE_URL"].startswith(
        "postgres"
    )
    commands = " ".join(" ".join(services[name]["command"]) for name in ("web", "worker", "migrate"))
    for command in re.findall(r"manage\.py (\w+)", commands):
        assert (
            command in {"migrate", "qcluster", "runworkers"}
            or (ROOT / "synthesis" / "management" / "commands" / f"{command}.py").exists()
        )


def served_metric_names(client) -> set[str]:
    body = client.get("/metrics").content.decode()
    return queried_metric_names(
        " ".join(line.split()[2] for line in body.splitlines() if line.startswith("# TYPE bark_"))
    )


def queried_metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\bbark_[a-z_]+", text))
    return {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in names}


def test_the_alerts_and_the_dashboard_query_metrics_that_exist(client, db):
    served = served_metric_names(client)
    alerts = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    rules = {rule["alert"]: rule["expr"] for group in alerts["groups"] for rule in group["rules"]}
    dashboard = (DEPLOY / "grafana-dashboard.json").read_text()

    assert {"BarkQueueBackingUp", "BarkNoLiveWorker", "BarkJobsFailing", "BarkHttpErrors"} <= set(rules)
    assert queried_metric_names(" ".join(rules.values())) <= served
    assert queried_metric_names(dashboard) <= served
    assert '"uid": "barksite-fleet"' in dashboard
