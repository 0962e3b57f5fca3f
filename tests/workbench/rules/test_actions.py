"""Actions against real receivers: MQTT subscriber, HTTP server (HMAC, retries), SMTP STARTTLS, scripts."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from tests.conftest import free_port
from tests.workbench.rules.conftest import Rig, alerts_of, frame
from tests.workbench.rules.receivers import HttpReceiver, SmtpReceiver
from workbench.db.tables import action_log
from workbench.live.bus import EventBus
from workbench.mqtt import MqttPublisher, host_port, make_client
from workbench.platform import Platform, Services
from workbench.rules.validation import validate_actions


@pytest.fixture
def action_platform(rules_platform: Platform, mqtt_url: str) -> Iterator[Platform]:
    """The rules platform with an MQTT publisher connected to the test broker."""
    publisher = MqttPublisher(mqtt_url)
    publisher.start()
    platform = replace(rules_platform, bus=EventBus(), mqtt=publisher, services=Services())
    yield platform
    publisher.stop()


@pytest.fixture
def fire(rig: Rig) -> Callable[[Platform, Any], tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``fire(platform, action)``: a rule with these actions fires once; returns (alert, log rows)."""

    def run(platform: Platform, action: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        assert validate_actions(action) == {}
        [device] = rig.devices(1)
        rule = rig.rule(
            "threshold",
            {"key": "temp", "operator": ">", "value": 50},
            target={"device_id": device},
            action=action,
        )
        engine = rig.start(platform, reload_seconds=5.0)
        started = time.perf_counter()
        engine.evaluate(frame([(0, device, "temp", 75.5)]))
        assert (
            time.perf_counter() - started < 3.0
        )  # actions never run on the evaluating thread (the slow script takes 4 s)
        assert engine.idle(20)
        [alert] = alerts_of(platform, rule)
        with platform.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(action_log)
                    .where(action_log.c.rule_id == uuid.UUID(rule))
                    .order_by(action_log.c.id)
                )
                .mappings()
                .all()
            )
        return alert, [dict(r) for r in rows]

    return run


def _subscribe(url: str, topics: list[str]) -> tuple[mqtt.Client, queue.Queue[tuple[str, Any]]]:
    received: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = make_client(url)
    ready = queue.Queue[bool]()
    client.on_connect = lambda c, *a: [c.subscribe(t, qos=1) for t in topics] and None
    client.on_subscribe = lambda *a: ready.put(True)
    client.on_message = lambda c, u, m: received.put((m.topic, m.payload.decode()))
    client.connect(*host_port(url))
    client.loop_start()
    for _ in topics:
        ready.get(timeout=10)
    return client, received


def test_alert_and_mqtt_actions_reach_a_real_subscriber(
    action_platform: Platform, mqtt_url: str, fire: Callable[..., Any]
) -> None:
    client, received = _subscribe(mqtt_url, ["insa/alerts/#", "plant/#"])
    bus_alerts: list[dict] = []
    action_platform.bus.subscribe("alert", lambda topic, payload: bus_alerts.append(payload))
    try:
        alert, log = fire(
            action_platform,
            [
                {"type": "alert", "severity": "critical", "message": "{device} too hot"},
                {
                    "type": "mqtt",
                    "topic": "plant/{device_id}/alarm",
                    "message": "{key}={value} > {threshold}",
                },
            ],
        )
        messages = dict(received.get(timeout=10) for _ in range(2))
    finally:
        client.loop_stop()
        client.disconnect()
    assert json.loads(messages["insa/alerts/critical"])["id"] == str(alert["id"])
    assert messages[f"plant/{alert['device_id']}/alarm"] == "temp=75.5 > 50"
    assert [a["id"] for a in bus_alerts] == [str(alert["id"])]
    assert sorted((r["action"], r["status"], r["attempts"]) for r in log) == [
        ("alert", "success", 1),
        ("mqtt", "success", 1),
    ]
    assert all(str(r["alert_id"]) == str(alert["id"]) for r in log)


def test_webhook_signs_and_retries_with_backoff(action_platform: Platform, fire: Callable[..., Any]) -> None:
    receiver = HttpReceiver()
    receiver.statuses = [503]
    try:
        alert, [entry] = fire(
            action_platform,
            {
                "type": "webhook",
                "url": receiver.url,
                "secret": "s3cret",
                "backoff": 0.05,
                "severity": "warning",
            },
        )
    finally:
        receiver.close()
    assert (entry["status"], entry["attempts"], entry["error"]) == ("success", 2, None)
    headers, body = receiver.requests[-1]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Workbench-Signature"] == expected
    payload = json.loads(body)
    assert payload["event"] == "alert" and payload["alert"]["id"] == str(alert["id"])
    assert payload["alert"]["value"] == 75.5 and payload["rule"]["type"] == "threshold"


def test_failing_action_is_logged_and_the_alert_kept(
    action_platform: Platform, fire: Callable[..., Any]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    alert, [entry] = fire(
        action_platform, {"type": "webhook", "url": dead, "retries": 2, "backoff": 0.01, "timeout": 1}
    )
    assert alert["status"] == "active"
    assert (entry["status"], entry["attempts"]) == ("failed", 3)
    assert "Connection refused" in entry["error"] or "URLError" in entry["error"]


def test_n8n_preset_posts_flat_fields(action_platform: Platform, fire: Callable[..., Any]) -> None:
    receiver = HttpReceiver()
    try:
        alert, [entry] = fire(action_platform, {"type": "n8n", "url": receiver.url, "data": {"line": 3}})
    finally:
        receiver.close()
    body = receiver.json()
    assert entry["status"] == "success"
    assert (body["severity"], body["key"], body["value"], body["line"], body["source"]) == (
        "warning",
        "temp",
        75.5,
        3,
        "insa-workbench",
    )
    assert body["alert_id"] == str(alert["id"])


def test_email_over_starttls_with_login(
    action_platform: Platform, fire: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp = SmtpReceiver(tmp_path, "alerts", "pw")
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))  # trust the test certificate, verification stays on
    settings = replace(
        action_platform.settings,
        smtp_host="localhost",
        smtp_port=smtp.port,
        smtp_user="alerts",
        smtp_password="pw",
        smtp_from="plant@example.com",
        smtp_tls="starttls",
    )
    try:
        alert, [entry] = fire(
            replace(action_platform, settings=settings),
            {
                "type": "email",
                "to": ["ops@example.com"],
                "severity": "critical",
                "subject": "{severity}: {key} at {value}",
            },
        )
    finally:
        smtp.close()
    assert entry["status"] == "success", entry["error"]
    [envelope] = smtp.messages
    assert smtp.logins == ["alerts"]
    assert envelope.mail_from == "plant@example.com" and envelope.rcpt_tos == ["ops@example.com"]
    text = envelope.content.decode()
    assert "Subject: critical: temp at 75.5" in text and "Threshold: 50" in text
    assert alert["severity"] == "critical"


def test_script_action_gets_params_and_honours_timeout(
    action_platform: Platform, fire: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = Path(__file__).resolve().parent / "scripts"
    monkeypatch.setenv("WORKBENCH_SCRIPTS_DIR", str(folder))  # what validation outside a request reads
    action_platform = replace(action_platform, settings=replace(action_platform.settings, scripts_dir=folder))
    out = tmp_path / "out.json"
    script = "record_action.py"
    alert, [entry] = fire(action_platform, {"type": "script", "path": script, "params": {"out": str(out)}})
    assert entry["status"] == "success", entry["error"]
    recorded = json.loads(out.read_text())
    assert recorded["alert"]["id"] == str(alert["id"]) and recorded["params"]["out"] == str(out)
    assert entry["detail"]["stdout"].startswith("recorded")
    slow = tmp_path / "slow.json"
    _, [late] = fire(
        action_platform,
        {"type": "script", "path": script, "timeout": 4, "params": {"out": str(slow), "sleep": 8}},
    )
    assert late["status"] == "failed" and "longer than 4 s" in late["error"] and not slow.exists()
    assert validate_actions({"type": "script", "path": "../etc/passwd"}) == {
        "action.path": f"must be a .py or .ipynb file inside the scripts folder {folder}"
        " (a relative path without '..')"
    }
