"""The device directory: a registration is visible to the next lookup at once; misses are bounded."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, event, update

from ingest.directory import MISS_RELOAD_SECONDS, DeviceDirectory
from tests.ingest.conftest import make_device
from workbench.db.tables import devices


def test_a_device_registered_right_after_a_miss_is_found(engine: Engine) -> None:
    directory = DeviceDirectory(engine)
    directory.load()
    assert directory.lookup(str(uuid.uuid4())) is None  # a miss (as an NBIRTH's first lookup was)
    device = make_device(engine, ["mode"])
    info = directory.lookup(str(device))  # well within MISS_RELOAD_SECONDS of the miss
    assert info is not None and info.id == device and info.text_keys == frozenset({"mode"})


def test_a_missing_id_is_not_asked_again_within_the_interval(engine: Engine) -> None:
    directory = DeviceDirectory(engine)
    directory.load()
    missing = str(uuid.uuid4())
    queries: list[str] = []

    def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
        queries.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert directory.lookup(missing) is None
        asked = len(queries)
        assert asked >= 1
        for _ in range(50):
            assert directory.lookup(missing) is None
        assert len(queries) == asked, f"misses within {MISS_RELOAD_SECONDS} s must not reach the database"
        assert directory.lookup("not-a-uuid") is None
        assert len(queries) == asked, "an id that is no UUID never reaches the database"
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_changed_makes_a_known_device_read_afresh(engine: Engine) -> None:
    directory = DeviceDirectory(engine)
    device = make_device(engine, [])
    directory.load()
    assert directory.lookup(str(device)).text_keys == frozenset()  # type: ignore[union-attr]
    with engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == device).values(config={"text_keys": ["state"]}))
    directory.changed(device)
    assert directory.lookup(str(device)).text_keys == frozenset({"state"})  # type: ignore[union-attr]
