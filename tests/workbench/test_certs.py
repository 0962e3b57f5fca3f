"""Device certificates on a real Mosquitto over TLS: own topics only, revocation, first-connect registration.

The broker runs the shipped deploy/mosquitto/mosquitto-tls.conf (paths and ports moved to a temporary
folder); the CA, the broker's and the devices' certificates come from the `workbench certs` commands; the
platform's own ingest connects over mqtts:// with WORKBENCH_MQTT_CA_FILE and a client certificate.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import Engine, func, select

from ingest.broker import wait_for_port
from ingest.device_auth import SERVICE_USER, MosquittoAuth
from tests.conftest import ROOT, free_port
from tests.ingest.conftest import count_rows, make_device, wait_until
from workbench.certs import CertAuthority, CertError
from workbench.db.engine import make_engine
from workbench.db.tables import action_log, devices, quarantine

pytestmark = [pytest.mark.mosquitto, pytest.mark.mosquitto_clients]


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the session's database."""
    found = make_engine(database_url, pool_size=2)
    yield found
    found.dispose()


WORKBENCH = str(ROOT / ".venv" / "bin" / "workbench")


def test_issue_and_revoke_write_a_crl_naming_the_serial(tmp_path: Path) -> None:
    authority = CertAuthority(tmp_path / "pki")
    with pytest.raises(CertError, match="init-ca"):
        authority.issue("dev", tmp_path / "out")
    authority.init()
    with pytest.raises(CertError, match="already exists"):
        authority.init()
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o077 == 0
    issued = authority.issue("dev-1", tmp_path / "out")
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(issued.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "dev-1"
    assert issued.key.stat().st_mode & 0o077 == 0
    assert authority.revoke("dev-1") == 1
    crl = x509.load_pem_x509_crl(authority.crl_path.read_bytes())
    assert crl.is_signature_valid(ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    with pytest.raises(CertError, match="no valid certificate"):
        authority.revoke("dev-1")


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([WORKBENCH, "certs", *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class TlsBroker:
    """A private Mosquitto on the shipped TLS config, with the CA folder of the `workbench certs` commands."""

    env: dict[str, str]
    pki: Path
    port: int
    plain_port: int
    config: Path
    process: subprocess.Popen[bytes]

    def issue(self, name: str) -> Path:
        """Issue a certificate for ``name`` through the CLI; returns its folder."""
        out = self.pki / "issued" / name
        _cli(self.env, "issue", name, "--out", str(out))
        return out

    def restart(self) -> None:
        """Restart the broker (it reads the CRL when its listener starts)."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        self.process = _start_mosquitto(self.config)
        wait_for_port("127.0.0.1", self.port)


def _start_mosquitto(config: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return subprocess.Popen([binary, "-c", str(config)], stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def broker() -> Iterator[TlsBroker]:
    """The shipped TLS Mosquitto config on free ports, certificates from the CLI."""
    # Mosquitto drops to its own user when started as root: a folder it can reach (pytest's are 0700).
    root = Path(tempfile.mkdtemp(prefix="workbench-test-mqtt-tls-"))
    root.chmod(0o755)
    pki = root / "certs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env["WORKBENCH_CERTS_DIR"] = str(pki)
    _cli(env, "init-ca")
    _cli(env, "issue", "--server", "localhost,127.0.0.1", "--out", str(pki))
    (pki / "localhost.crt").rename(pki / "server.crt")
    (pki / "localhost.key").rename(pki / "server.key")
    _cli(env, "issue", SERVICE_USER, "--out", str(pki / "platform"))
    for path in pki.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # Mosquitto may drop to its own user
    MosquittoAuth(root / "auth", service_password=uuid.uuid4().hex)  # writes passwd and acl
    port, plain_port = free_port(), free_port()
    text = (ROOT / "deploy" / "mosquitto" / "mosquitto-tls.conf").read_text()
    text = text.replace("/mosquitto/", f"{root}/").replace("log_dest stdout", "log_dest stderr")
    text = text.replace(f"pid_file {root}/auth/mosquitto.pid", "")  # Mosquitto's own user may not write there
    text = text.replace("listener 1883", f"listener {plain_port} 127.0.0.1")
    text = text.replace("listener 8883", f"listener {port} 127.0.0.1")
    (root / "data").mkdir(mode=0o777)
    (root / "data").chmod(0o777)
    config = root / "mosquitto.conf"
    config.write_text(text)
    process = _start_mosquitto(config)
    wait_for_port("127.0.0.1", port)
    found = TlsBroker(env, pki, port, plain_port, config, process)
    yield found
    found.process.terminate()
    found.process.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def _pub(broker: TlsBroker, certs: Path | None, name: str, topic: str, payload: str = "21.5") -> int:
    command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv311", "-q", "1"]
    if certs is not None:
        command += ["--cafile", str(broker.pki / "ca.crt")]
        command += ["--cert", str(certs / f"{name}.crt"), "--key", str(certs / f"{name}.key")]
    command += ["-t", topic, "-m", payload]
    return subprocess.run(command, capture_output=True, timeout=15).returncode


@contextmanager
def ingest_over_tls(
    broker: TlsBroker, database_url: str, data_dir: Path, auto_register: bool
) -> Iterator[None]:
    """`workbench ingest` connected over mqtts:// with the CA file and the platform's certificate."""
    platform = broker.pki / "platform"
    env = dict(
        broker.env,
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_DATA_DIR=str(data_dir),
        WORKBENCH_MQTT_URL=f"mqtts://127.0.0.1:{broker.port}",
        WORKBENCH_MQTT_CA_FILE=str(broker.pki / "ca.crt"),
        WORKBENCH_MQTT_CERT_FILE=str(platform / f"{SERVICE_USER}.crt"),
        WORKBENCH_MQTT_KEY_FILE=str(platform / f"{SERVICE_USER}.key"),
        WORKBENCH_INGEST_AUTO_REGISTER="true" if auto_register else "false",
        WORKBENCH_INGEST_CLIENT_ID=f"ingest-tls-{uuid.uuid4().hex[:8]}",
        WORKBENCH_CONNECTORS_ENABLED="false",
        WORKBENCH_SPARKPLUG_ENABLED="false",
    )
    process = subprocess.Popen([WORKBENCH, "ingest"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def _publish_until_stored(broker: TlsBroker, certs: Path, device: uuid.UUID, engine: Engine) -> None:
    # The first messages may arrive before ingest has subscribed: send until one is committed.
    def stored() -> bool:
        _pub(broker, certs, str(device), f"insa/devices/{device}/telemetry/t")
        return count_rows(engine, device) > 0

    wait_until(stored, timeout=30, interval=0.5)


@pytest.mark.slow
def test_a_device_certificate_reaches_only_its_own_topics_until_revoked(
    broker: TlsBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    mine, other = make_device(engine), make_device(engine)
    certs = broker.issue(str(mine))
    with ingest_over_tls(broker, database_url, tmp_path, auto_register=False):
        _publish_until_stored(broker, certs, mine, engine)
        # Another device's topic: the broker drops it (its CN is not that device).
        assert _pub(broker, certs, str(mine), f"insa/devices/{other}/telemetry/t") in (0, 5)
        # Plain MQTT on the TLS port is refused, and so is TLS without a client certificate.
        assert _pub(broker, None, str(mine), f"insa/devices/{mine}/telemetry/t") != 0
        no_cert = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "--cafile"]
        no_cert += [str(broker.pki / "ca.crt"), "-t", f"insa/devices/{mine}/telemetry/t", "-m", "1"]
        assert subprocess.run(no_cert, capture_output=True, timeout=15).returncode != 0
        # A last point of mine, behind which the refused one would have been committed.
        before = count_rows(engine, mine)
        assert _pub(broker, certs, str(mine), f"insa/devices/{mine}/telemetry/t", "99") == 0
        wait_until(lambda: count_rows(engine, mine) > before, timeout=15)
        assert count_rows(engine, other) == 0
        _cli(broker.env, "revoke", str(mine))
        broker.restart()
        assert _pub(broker, certs, str(mine), f"insa/devices/{mine}/telemetry/t") != 0


def _registered(engine: Engine, device: uuid.UUID) -> tuple[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(func.count()).select_from(devices).where(devices.c.id == device)
        ).scalar_one()
        logged = conn.execute(
            select(func.count())
            .select_from(action_log)
            .where(action_log.c.action == "device_register")
            .where(action_log.c.detail["device_id"].astext == str(device))
        ).scalar_one()
    return rows, logged


@pytest.mark.slow
def test_an_unknown_ca_signed_device_registers_once_only_when_allowed(
    broker: TlsBroker, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    refused, welcome = uuid.uuid4(), uuid.uuid4()
    refused_certs, welcome_certs = broker.issue(str(refused)), broker.issue(str(welcome))
    known = make_device(engine)
    known_certs = broker.issue(str(known))
    with ingest_over_tls(broker, database_url, tmp_path, auto_register=False):
        _publish_until_stored(broker, known_certs, known, engine)
        assert _pub(broker, refused_certs, str(refused), f"insa/devices/{refused}/telemetry/t") == 0

        def quarantined() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count())
                        .select_from(quarantine)
                        .where(quarantine.c.device_id == str(refused))
                    ).scalar_one()
                )

        wait_until(lambda: quarantined() > 0, timeout=15)
        assert _registered(engine, refused) == (0, 0)
    with ingest_over_tls(broker, database_url, tmp_path, auto_register=True):
        _publish_until_stored(broker, welcome_certs, welcome, engine)
        assert _pub(broker, welcome_certs, str(welcome), f"insa/devices/{welcome}/telemetry/t") == 0
        wait_until(lambda: count_rows(engine, welcome) >= 2, timeout=15)
    assert _registered(engine, welcome) == (1, 1)
