"""Sparkplug B auto-registration: edge nodes and devices become rows of ``devices``.

Policy (documented in the README): a Sparkplug edge node or device is identified by its topic path,
stored as the row's ``connection_string`` (``spBv1.0/{group}/{node}`` or ``spBv1.0/{group}/{node}/{device}``).
On NBIRTH/DBIRTH the row is found by that path; when none exists and auto-registration is on
(``WORKBENCH_SPARKPLUG_AUTO_REGISTER``, default on) a row is created with protocol ``sparkplug``, type
``gateway`` (node) or ``sensor`` (device), and name ``group/node[/device]``. Every birth stores the metric
catalogue (name → alias, datatype, unit, key) in ``config.sparkplug.metrics``. With auto-registration off,
unknown nodes' data still reaches the pipeline under their path, which quarantines it as an unknown device.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from ingest.connectors.sparkplug_proto import STRING, TEXT
from workbench.db.tables import devices

NAMESPACE = "spBv1.0"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def device_path(group: str, node: str, device: str | None = None) -> str:
    """The Sparkplug topic path that identifies a node or device (stored as ``connection_string``)."""
    return f"{NAMESPACE}/{group}/{node}" + (f"/{device}" if device else "")


def metric_key(name: str) -> str:
    """A telemetry key for a Sparkplug metric name (``Motor/Current A`` → ``Motor.Current_A``)."""
    key = _KEY_UNSAFE.sub("_", name.replace("/", ".")).strip("._")
    return key[:100] or "value"


def register(
    engine: Engine, path: str, catalogue: dict[str, Any], auto_register: bool, is_node: bool
) -> uuid.UUID | None:
    """Find (or create, when allowed) the device row for ``path``; store the metric catalogue; mark online.

    String and Text metrics are declared in ``config.text_keys`` so the pipeline keeps their values.
    """
    text_keys = sorted(e["key"] for e in catalogue.values() if e.get("datatype") in (STRING, TEXT))
    with engine.begin() as conn:
        row = conn.execute(
            select(devices.c.id, devices.c.config).where(devices.c.connection_string == path).limit(1)
        ).first()
        if row is None:
            if not auto_register:
                return None
            name = path.removeprefix(f"{NAMESPACE}/")
            device_id: uuid.UUID = conn.execute(
                insert(devices)
                .values(
                    name=name,
                    type="gateway" if is_node else "sensor",
                    protocol="sparkplug",
                    connection_string=path,
                    config={"sparkplug": {"metrics": catalogue}, "text_keys": text_keys},
                    status="online",
                    last_seen=func.now(),
                    metadata={"registered_by": "sparkplug-birth"},
                )
                .returning(devices.c.id)
            ).scalar_one()
            return device_id
        config = dict(row.config or {})
        if config.get("sparkplug", {}).get("metrics") != catalogue:
            config["sparkplug"] = {**config.get("sparkplug", {}), "metrics": catalogue}
            config["text_keys"] = sorted({*config.get("text_keys", []), *text_keys})
            conn.execute(
                update(devices)
                .where(devices.c.id == row.id)
                .values(config=config, status="online", last_seen=func.now(), updated_at=func.now())
            )
        else:
            conn.execute(
                update(devices).where(devices.c.id == row.id).values(status="online", last_seen=func.now())
            )
        return uuid.UUID(str(row.id))
