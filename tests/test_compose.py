"""docker-compose.yml: every WORKBENCH_* it sets is declared, every service it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from workbench.settings import declared

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "timescaledb",
    "mosquitto",
    "redis",
    "web",
    "ingest",
    "dask-scheduler",
    "dask-worker",
    "jupyterlab",
}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service() -> None:
    assert set(_compose()["services"]) >= REQUIRED


def test_compose_sets_only_declared_settings() -> None:
    names = {name for name, _, _ in declared()}
    services = _compose()["services"]
    used = {
        variable
        for service in services.values()
        for variable in (service.get("environment") or {})
        if variable.startswith("WORKBENCH_")
    }
    assert used, "the workbench services set WORKBENCH_* variables"
    assert used <= names


def test_compose_references_exist() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    image = _compose()["services"]["timescaledb"]["image"]
    assert "pg16" in image


def test_one_mqtt_ingest_session_per_client_id() -> None:
    services = _compose()["services"]
    # Two processes with one client id take each other's persistent session over (and retire it).
    subscribers = [
        (service.get("environment") or {}).get("WORKBENCH_INGEST_CLIENT_ID", "workbench-ingest")
        for name, service in services.items()
        if name in ("web", "ingest")
        and str((service.get("environment") or {}).get("WORKBENCH_INGEST_MQTT", "true")).lower() != "false"
    ]
    assert subscribers and len(subscribers) == len(set(subscribers))


INTERNAL = {"timescaledb", "redis", "dask-scheduler", "dask-worker", "ingest"}
VARIABLE = re.compile(r"\$\{(\w+)(:?[?-])?[^}]*\}")


def test_internal_services_publish_no_host_port() -> None:
    services = _compose()["services"]
    for name in INTERNAL:
        assert not services[name].get("ports"), f"{name} publishes a port on the host"
    for port in services["jupyterlab"].get("ports") or []:
        assert str(port).startswith("127.0.0.1:"), "JupyterLab runs code: this host only"


def test_secrets_come_from_the_env_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text and "workbench:workbench@" not in text
    assert "POSTGRES_PASSWORD: workbench" not in text
    used = {match.group(1): match.group(2) for match in VARIABLE.finditer(text)}
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "MOSQUITTO_SERVICE_PASSWORD"} <= set(used)
    # Required (`:?`): a missing secret stops compose instead of falling back to a default.
    assert all(kind == ":?" for kind in used.values()), used
    example = (ROOT / ".env.example").read_text()
    listed = {line.split("=")[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert set(used) == listed
    assert all(line.endswith("=") for line in example.splitlines() if line and not line.startswith("#"))
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert "cp .env.example .env" in (ROOT / "README.md").read_text()
    # Redis asks for the password the platform's URL carries.
    redis = _compose()["services"]["redis"]
    assert "--requirepass" in redis["command"]


def test_the_tls_override_serves_devices_on_8883_from_the_shared_ca() -> None:
    override = yaml.safe_load((ROOT / "deploy" / "compose.tls.yml").read_text())
    base = _compose()["services"]
    assert set(override["services"]) <= set(base)
    broker = override["services"]["mosquitto"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in broker["volumes"])
    # Paths in an override resolve against the first file's folder (the repository root).
    config = next(source for source, target in mounts.items() if target == "/mosquitto/config/mosquitto.conf")
    assert config == "./deploy/mosquitto/mosquitto-tls.conf" and (ROOT / config).exists()
    assert "8883:8883" in broker["ports"]
    # Every file the TLS listener names lies in the volume the web service's `workbench certs` writes.
    tls = (ROOT / config).read_text()
    files = re.findall(r"^(?:cafile|certfile|keyfile|crlfile) (\S+)$", tls, re.MULTILINE)
    assert len(files) == 4 and all(path.startswith(mounts["mqtt-pki"] + "/") for path in files)
    web = override["services"]["web"]
    assert f"mqtt-pki:{web['environment']['WORKBENCH_CERTS_DIR']}" in web["volumes"]
    assert set(web["environment"]) <= {name for name, _, _ in declared()}
    assert "mqtt-pki" in override["volumes"]
