"""The demo's rules over 30 minutes of demo time: each injected fault raises its alert, healthy devices none.

The plant model runs faster than real time (30 simulated minutes in a few seconds), its readings are stored
as telemetry, and every demo rule is replayed through the rule engine's own evaluators and alert lifecycle
(``backtest``; the notebook rule runs its notebook on warm kernels) over that half hour.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from ingest.simulator.demo import PREFIX, demo_faults, demo_rules
from ingest.simulator.model import PlantModel
from ingest.simulator.plant import demo_plant
from tests.workbench.notebooks.fixtures import runner_platform
from workbench.db.engine import make_engine
from workbench.db.tables import devices, rules, telemetry
from workbench.notebooks.runner import NotebookRunner
from workbench.rules.backtest import backtest
from workbench.rules.types import Rule

pytestmark = pytest.mark.slow

DEMO_SECONDS = 30 * 60
# Which rule each injected fault must trip, on which device.
EXPECTED = {
    ("pump vibration high", "pump-1"),  # bearing wear
    ("valve closing", "valve-3"),
    ("flow unstable (cavitation)", "pump-2"),
    ("flow sensor flatlined", "pump-4"),  # stuck flow sensor
    ("vibration early warning (notebook)", "pump-5"),  # mild bearing wear, below the threshold
}


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    made = make_engine(database_url, pool_size=2)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def demo_half_hour(engine: Engine) -> tuple[dict[str, uuid.UUID], datetime, datetime]:
    """30 minutes of the demo plant with the demo's faults, stored under fresh device rows."""
    plant = demo_plant()
    plant.faults = demo_faults()
    # The evening demand peak: the largest flows, so the hardest half hour for false alarms.
    start = datetime(2025, 6, 2, 18, 23, tzinfo=UTC)
    model = PlantModel(plant, start=start)
    tag = uuid.uuid4().hex[:6]
    ids: dict[str, uuid.UUID] = {}
    with engine.begin() as conn:
        for name, kind, _ in plant.devices():
            ids[name] = conn.execute(
                insert(devices).values(name=f"{name}-{tag}", type=kind).returning(devices.c.id)
            ).scalar_one()
        rows = [
            {"timestamp": at, "device_id": ids[device], "key": key, "value": value}
            for at, sample in model.run(DEMO_SECONDS)
            for device, values in sample.items()
            for key, value in values.items()
        ]
        conn.execute(insert(telemetry), rows)
    return ids, start, start + timedelta(seconds=DEMO_SECONDS + 1)


def test_each_fault_raises_its_alert_and_healthy_devices_none(
    engine: Engine,
    notebook_runner: NotebookRunner,
    demo_half_hour: tuple[dict[str, uuid.UUID], datetime, datetime],
) -> None:
    ids, start, end = demo_half_hour
    names = {str(device_id): name for name, device_id in ids.items()}
    platform = runner_platform(notebook_runner)
    faulty = {fault.device for fault in demo_faults()}
    fired: set[tuple[str, str]] = set()
    for spec in demo_rules():
        kind = spec["target"]["device_type"]
        mine = [str(device_id) for name, device_id in ids.items() if name.startswith(kind)]
        # The demo's rule, watching this test's devices only (the session database holds other pumps).
        row = {**spec, "name": f"{spec['name']} {uuid.uuid4().hex[:6]}", "target": {"device_ids": mine}}
        with engine.begin() as conn:
            stored = conn.execute(insert(rules).values(**row).returning(*rules.c)).one()
        rule = Rule.from_row(stored._mapping)
        windows = [(start, end)]
        if rule.type == "notebook":
            # As the live engine runs it: every minute over the last `window` (its baseline before that).
            step, span = timedelta(minutes=1), timedelta(minutes=2)
            windows = [(start + i * step - span, start + i * step) for i in range(5, DEMO_SECONDS // 60 + 1)]
        for window_start, window_end in windows:
            for alert in backtest(engine, rule, window_start, window_end, platform)["alerts"]:
                fired.add((spec["name"].removeprefix(PREFIX), names[str(alert["device_id"])]))
    on_healthy = {pair for pair in fired if pair[1] not in faulty}
    assert on_healthy == set(), f"rules fired on healthy devices: {on_healthy}"
    assert fired >= EXPECTED, f"missing: {EXPECTED - fired}; fired: {fired}"
