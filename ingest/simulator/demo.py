"""``workbench demo``: the platform on embedded defaults plus the simulated plant, with content to explore.

The demo creates (once, found again by name on later runs) an admin user, sample dashboards, threshold and
statistical rules (and a notebook rule when that rule type is installed) that raise alerts on the faults it
injects, and a scheduled report. Rules are checked with the rules module's own validation before they are
stored, so a rule type missing from this build is skipped with a warning instead of breaking the demo.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from ingest.simulator.faults import Fault
from ingest.simulator.live import Endpoints, Simulator
from ingest.simulator.plant import PlantSpec, demo_plant
from workbench.auth.users import create_user
from workbench.db.tables import dashboards, report_schedules, rules, users
from workbench.live.bus import RULES_CHANGED
from workbench.platform import Platform
from workbench.rules.validation import validate_rule
from workbench.settings import Settings
from workbench.ui.dashboards_db import COLUMNS, DEFAULT_H, split

log = logging.getLogger(__name__)

ADMIN_EMAIL = "admin@demo.local"
PREFIX = "Demo: "
REPORT_NAME = f"{PREFIX}daily plant summary"
# The scheduled report first runs at its next 07:00; the demo also renders it once after this much live
# data (covering today so far), so the Reports page has a PDF to open within the first minute or two.
FIRST_REPORT_AFTER_S = 45.0


def demo_settings(settings: Settings) -> Settings:
    """The demo's settings: its own data folder (unless a database is configured) and free ports."""
    changes: dict[str, Any] = {}
    if not settings.database_url and settings.data_dir.name != "demo":
        changes["data_dir"] = settings.data_dir / "demo"
    if not settings.mqtt_url and not _port_free(settings.mqtt_port):
        changes["mqtt_port"] = _free_port()
    if settings.port == 0 or not _port_free(settings.port, settings.host):
        changes["port"] = _free_port()
    return dataclasses.replace(settings, **changes) if changes else settings


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def demo_faults() -> list[Fault]:
    """The faults the demo injects, timed so the first alerts come within two minutes."""
    return [
        Fault("bearing_wear", "pump-1", start_s=3, ramp_s=20),  # MQTT pump: vibration climbs
        # HTTP valve shuts, slowly enough that pump-3's falling flow is not taken for cavitation (at the
        # evening demand peak a 2-minute closing gave a 20 s flow stddev of 6.7; 4 minutes give at most 3.6).
        Fault("valve_closing", "valve-3", start_s=5, ramp_s=240, severity=0.8),
        Fault("cavitation", "pump-2", start_s=30, ramp_s=20),  # Sparkplug pump: erratic flow
        Fault("stuck_sensor", "pump-4", key="flow", start_s=20),  # Modbus pump: flow sensor stuck
        # OPC-UA pump: mild bearing wear once the notebook rule has a baseline (below the threshold).
        Fault("bearing_wear", "pump-5", start_s=300, ramp_s=120, severity=0.3),
    ]


def ensure_admin(engine: Engine, data_dir: Path) -> tuple[str, str, bool]:
    """The demo admin (email, password, created now); the password is kept in ``DATA_DIR/demo-admin``."""
    secret_file = data_dir / "demo-admin"
    with engine.connect() as conn:
        exists = conn.execute(select(users.c.id).where(users.c.email == ADMIN_EMAIL)).first() is not None
    if exists and secret_file.exists():
        return ADMIN_EMAIL, secret_file.read_text().strip(), False
    if exists:
        return ADMIN_EMAIL, "(set on an earlier run; reset with `workbench user create`)", False
    password = secrets.token_urlsafe(12)
    create_user(engine, ADMIN_EMAIL, "admin", password)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return ADMIN_EMAIL, password, True


def demo_rules() -> list[dict[str, Any]]:
    """Rules that catch the injected faults (each on a device type, so they watch the whole plant)."""
    alert = {"type": "alert"}
    return [
        {
            "name": f"{PREFIX}pump vibration high",
            "description": "Bearing wear: vibration above ISO 10816 zone C for 10 s.",
            "type": "threshold",
            "target": {"device_type": "pump"},
            "condition": {"key": "vibration", "operator": ">", "value": 7.0, "duration_seconds": 10},
            "action": {**alert, "severity": "critical", "message": "Vibration {value} mm/s on {device}"},
            "cooldown_seconds": 600,
        },
        {
            "name": f"{PREFIX}valve closing",
            "description": "A discharge valve below half open for 5 s.",
            "type": "threshold",
            "target": {"device_type": "valve"},
            "condition": {"key": "position", "operator": "<", "value": 50.0, "duration_seconds": 5},
            "action": {**alert, "severity": "warning", "message": "Valve at {value} % on {device}"},
            "cooldown_seconds": 600,
        },
        {
            "name": f"{PREFIX}flow unstable (cavitation)",
            "description": "Standard deviation of flow over 20 s: vapour pockets make it erratic (a short "
            "window, so a flow that falls steadily as a valve closes does not count).",
            "type": "statistical",
            "target": {"device_type": "pump"},
            "condition": {
                "key": "flow",
                "function": "stddev",
                "window": "20s",
                "operator": ">",
                "value": 5.0,
            },
            "action": {**alert, "severity": "warning", "message": "Flow unstable on {device}"},
            "cooldown_seconds": 600,
        },
        {
            "name": f"{PREFIX}flow sensor flatlined",
            "description": "A live flow reading that does not move for a minute is a stuck sensor.",
            "type": "statistical",
            "target": {"device_type": "pump"},
            "condition": {
                "key": "flow",
                "function": "stddev",
                "window": "1m",
                "operator": "<",
                "value": 0.001,
                "min_points": 20,
            },
            "action": {**alert, "severity": "warning", "message": "Flow sensor stuck on {device}"},
            "cooldown_seconds": 600,
        },
        {
            "name": f"{PREFIX}vibration early warning (notebook)",
            "description": "Rolling z-score notebook (rules/zscore.ipynb): vibration of the last 2 minutes "
            "against the 3 before, long before the threshold trips.",
            "type": "notebook",
            "target": {"device_type": "pump"},
            "condition": {
                "notebook": "rules/zscore.ipynb",
                "keys": ["vibration"],
                "window": "2m",
                "every": "1m",
                # Wide limits: a pump whose speed its tank's controller changes drifts by up to z 6
                # (measured over the demo plant at every hour of the day); the mild wear jumps to z 75+.
                "parameters": {
                    "keys": ["vibration"],
                    "baseline": "3m",
                    "rolling": 10,
                    "z_limit": 15.0,
                    "std_limit": 0,
                },
            },
            "action": {**alert, "severity": "warning", "message": "Vibration rising on {device}"},
            "cooldown_seconds": 1800,
        },
    ]


def two_columns(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``widgets`` placed two to a row on the dashboard grid, in order."""
    half = COLUMNS // 2
    return [
        {**widget, "x": (index % 2) * half, "y": (index // 2) * DEFAULT_H, "w": half, "h": DEFAULT_H}
        for index, widget in enumerate(widgets)
    ]


def demo_dashboards(ids: dict[str, uuid.UUID]) -> list[dict[str, Any]]:
    """Sample dashboards: the plant overview and one pump in detail."""

    def widget(kind: str, title: str, device: str | None = None, keys: list[str] | None = None) -> dict:
        return {
            "id": uuid.uuid4().hex[:8],
            "type": kind,
            "title": title,
            "device_id": str(ids[device]) if device else None,
            "keys": keys or [],
            "window": "15m",
            "aggregation": "avg",
        }

    overview = [
        widget("status", "Plant devices"),
        widget("alerts", "Active alerts"),
        *[widget("line", f"{p} flow and pressure", p, ["flow", "pressure"]) for p in ("pump-1", "pump-2")],
        widget("gauge", "Tank 1 level", "tank-1", ["level_percent"]),
        widget("line", "Valve 3 position", "valve-3", ["position"]),
    ]
    pump = [
        widget("stat", "Motor current", "pump-1", ["motor_current"]),
        widget("stat", "Vibration", "pump-1", ["vibration"]),
        widget("line", "Temperatures", "pump-1", ["motor_temperature", "fluid_temperature"]),
        widget("table", "Latest values", "pump-1"),
    ]
    return [
        {"name": f"{PREFIX}plant overview", "widgets": overview},
        {"name": f"{PREFIX}pump 1 condition", "widgets": pump},
    ]


def seed_content(
    engine: Engine, admin_id: uuid.UUID | None, ids: dict[str, uuid.UUID]
) -> dict[str, list[str]]:
    """Store the demo's rules, dashboards and report schedule (skipping those that exist by name)."""
    created: dict[str, list[str]] = {"rules": [], "dashboards": [], "schedules": [], "skipped": []}
    with engine.begin() as conn:
        have = set(conn.execute(select(rules.c.name)).scalars())
        for rule in demo_rules():
            if rule["name"] in have:
                continue
            errors = validate_rule(rule)
            if errors:
                created["skipped"].append(f"{rule['name']}: {errors}")
                continue
            conn.execute(insert(rules).values(**rule, created_by=admin_id))
            created["rules"].append(rule["name"])
        have = set(conn.execute(select(dashboards.c.name)).scalars())
        for board in demo_dashboards(ids):
            if board["name"] in have:
                continue
            widgets, layout = split(two_columns(board["widgets"]))
            conn.execute(
                insert(dashboards).values(
                    name=board["name"], user_id=admin_id, widgets=widgets, layout=layout, is_public=True
                )
            )
            created["dashboards"].append(board["name"])
        name = REPORT_NAME
        if conn.execute(select(report_schedules.c.id).where(report_schedules.c.name == name)).first() is None:
            conn.execute(
                insert(report_schedules).values(
                    name=name,
                    notebook="daily_plant_summary",
                    format="pdf",
                    cron="0 7 * * *",
                    timezone="UTC",
                    parameters={},
                    recipients=[],
                    created_by=admin_id,
                )
            )
            created["schedules"].append(name)
    for line in created["skipped"]:
        log.warning("demo rule skipped: %s", line)
    return created


def first_report(platform: Platform, stopping: threading.Event, delay: float = FIRST_REPORT_AFTER_S) -> None:
    """Render the demo's scheduled report once now (today so far), as its schedule would tomorrow."""
    from workbench.reports.service import service

    if stopping.wait(delay):
        return
    with platform.engine.connect() as conn:
        schedule = conn.execute(
            select(report_schedules).where(report_schedules.c.name == REPORT_NAME)
        ).first()
    if schedule is None:
        return
    reports = service(platform)
    parameters = {"timezone": schedule.timezone, **schedule.parameters, "start": "today", "end": "now"}
    try:
        report_id = reports.request(
            schedule.notebook,
            schedule.format,
            parameters,
            requested_by=schedule.created_by,
            schedule_id=schedule.id,
        )
        row = reports.run(report_id)
    except Exception as error:  # the demo goes on; the Reports page shows the failed run
        log.warning("demo: the first report failed: %s", error)
        return
    log.info("demo: first %s report %s: %s", schedule.format, report_id, row["status"])


@dataclass
class DemoInfo:
    """What ``workbench demo`` prints."""

    url: str
    email: str
    password: str
    created_admin: bool
    content: dict[str, list[str]] = field(default_factory=dict)


def start_demo(
    platform: Platform, url: str, plant: PlantSpec | None = None
) -> tuple[Callable[[], None], DemoInfo]:
    """Start connectors (when ingest has none), the simulator with its faults, and seed content."""
    from ingest.connectors.manager import start_connectors
    from workbench.notebooks.service import notebook_runner

    settings = platform.settings
    stops: list[Callable[[], None]] = [start_connectors(platform)]  # stopped first: clients before servers
    if platform.services.notebooks is None:
        notebook_runner(platform)  # the notebook rule needs the platform's runner
    # The warm kernels close with the platform (start_background), after the rule engine has stopped:
    # closing them here, before it, failed its last notebook evaluations with a traceback at every stop.
    plant = plant or demo_plant()
    if not plant.faults:
        plant.faults = demo_faults()
    simulator = Simulator(plant, platform.engine, Endpoints(mqtt_url=settings.mqtt_url, http_url=url))
    simulator.start(wait=False)  # the URL prints while the OPC-UA server is still starting
    stops.append(simulator.stop)
    platform.services.simulator = simulator
    email, password, created = ensure_admin(platform.engine, settings.data_dir)
    with platform.engine.connect() as conn:
        admin_id = conn.execute(select(users.c.id).where(users.c.email == ADMIN_EMAIL)).scalar()
    content = seed_content(platform.engine, admin_id, simulator.ids)
    platform.bus.publish(RULES_CHANGED, None)  # the rule engine reloads now, not at its next poll
    stopping = threading.Event()
    reporter = threading.Thread(
        target=first_report, args=(platform, stopping), name="demo-report", daemon=True
    )
    reporter.start()

    def stop_reporter() -> None:
        stopping.set()
        reporter.join(30)  # a report being rendered finishes first

    stops.insert(0, stop_reporter)

    def stop() -> None:
        for step in stops:
            started = time.monotonic()
            try:
                step()
            except Exception:
                log.exception("demo shutdown step failed")
            log.info(
                "demo: %s stopped in %.1f s", getattr(step, "__qualname__", step), time.monotonic() - started
            )

    return stop, DemoInfo(url, email, password, created, content)
