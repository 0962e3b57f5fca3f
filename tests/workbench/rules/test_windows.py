"""Incremental statistical windows give what a recomputation from the window's points gives.

``workbench.rules.windows.Window`` folds each point into a bucket once and reads bucket aggregates; here the
same points are fed in random frames (late, out of order, ties in time, several devices) and every function
is checked after every frame against a from-scratch computation over the points that the README's
semantics put in the window: every point received so far whose bucket has not left the window ending at its
device's newest point. Values are multiples of 1/8, so every sum is exact and the results must be equal,
not merely close.
"""

from __future__ import annotations

import itertools
import math
import uuid
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workbench.rules.conftest import T0 as T0_DB
from tests.workbench.rules.conftest import Rig
from workbench.rules.codes import DeviceCodes
from workbench.rules.statistical import FUNCTIONS
from workbench.rules.store import window_aggregates
from workbench.rules.types import EvalContext, Points, Rule, RuleState, rule_type
from workbench.rules.windows import Window, WindowBook, bucket_ns

S = 1_000_000_000
T0 = 1_767_600_000 * S  # 2026-01-05, as event time in ns
DEVICES = [str(uuid.UUID(int=i + 1)) for i in range(3)]

point = st.tuples(
    st.integers(0, len(DEVICES) - 1),  # device
    # Milliseconds after T0; whole seconds often, so points share a time (ties) within and across frames.
    st.one_of(st.integers(0, 400_000), st.integers(0, 400).map(lambda s: s * 1000)),
    st.integers(-8000, 8000),  # value in eighths
)
cuts = st.lists(st.integers(0, 200), max_size=12)


def frames_of(points: list[tuple[int, int, int]], at: list[int]) -> list[list[tuple[int, int, int]]]:
    """The points, in the order given, cut into frames at the given positions."""
    edges = sorted({0, len(points), *(min(c, len(points)) for c in at)})
    return [points[a:b] for a, b in itertools.pairwise(edges) if b > a]


def recompute(received: list[tuple[int, int, float]], window: int, function: str) -> tuple[int, float]:
    """(points, statistic) of one device's window from its points (time ns, arrival, value)."""
    width = bucket_ns(window / S)
    watermark = max(t for t, _, _ in received)
    inside = [(t, n, v) for t, n, v in received if t // width * width + width > watermark - window]
    values = [v for _, _, v in inside]
    n = len(values)
    s = math.fsum(values)
    oldest = min(inside, key=lambda p: (p[0], p[1]))  # ties: the first to arrive
    newest = max(inside, key=lambda p: (p[0], p[1]))  # ties: the last to arrive
    if function == "mean":
        return n, s / n
    if function == "min":
        return n, min(values)
    if function == "max":
        return n, max(values)
    if function == "range":
        return n, max(values) - min(values)
    if function == "rate_of_change":
        seconds = (newest[0] - oldest[0]) / 1e9
        return n, (newest[2] - oldest[2]) / seconds if seconds > 0 else math.nan
    ss = math.fsum(v * v for v in values)
    std = math.sqrt(max((ss - s * s / n) / (n - 1), 0.0)) if n > 1 else math.nan
    if function == "stddev":
        return n, std
    return n, (newest[2] - s / n) / std if std > 0 else math.nan  # zscore


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=300, deadline=None)
@given(
    points=st.lists(point, min_size=1, max_size=150),
    at=cuts,
    window_s=st.sampled_from([1, 10, 90, 120, 300]),
)
def test_incremental_window_equals_recomputation(
    points: list[tuple[int, int, int]], at: list[int], window_s: int
) -> None:
    codes = DeviceCodes()
    window = Window("k", window_s * S, 0.0, codes)
    received: dict[int, list[tuple[int, int, float]]] = {}
    arrival = 0
    for frame, chunk in enumerate(frames_of(points, at)):
        ids = np.array([DEVICES[d] for d, _, _ in chunk], dtype=object)
        dev = codes.encode(ids)
        ts = np.array([T0 + ms * 1_000_000 for _, ms, _ in chunk], dtype=np.int64)
        values = np.array([v / 8 for _, _, v in chunk])
        order = np.lexsort((ts, dev))  # as the engine hands them: sorted by (device, time), stable
        touched = window.feed(dev[order], ts[order], values[order], frame)
        for d, t, v in zip(dev[order], ts[order], values[order], strict=True):
            received.setdefault(int(d), []).append((int(t), arrival, float(v)))
            arrival += 1
        assert list(touched) == sorted(set(dev.tolist()))
        for function in FUNCTIONS:
            devices, n, stat = window.stats(touched, function)
            assert list(devices) == list(touched)
            for d, count, value in zip(devices, n, stat, strict=True):
                expected_n, expected = recompute(received[int(d)], window_s * S, function)
                assert count == expected_n
                assert same(float(value), expected), (function, int(d), float(value), expected)


@settings(max_examples=100, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 200_000),
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=80,
    ),
    at=cuts,
    ref=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_any_values_close_to_recomputation(
    points: list[tuple[int, int, float]], at: list[int], ref: float
) -> None:
    """Arbitrary values (sums no longer exact): the well-conditioned functions agree to rounding."""
    codes = DeviceCodes()
    length = 60 * S
    window = Window("k", length, ref, codes)
    received: dict[int, list[tuple[int, int, float]]] = {}
    arrival = 0
    for frame, chunk in enumerate(frames_of(points, at)):
        dev = codes.encode(np.array([DEVICES[d] for d, _, _ in chunk], dtype=object))
        ts = np.array([T0 + ms * 1_000_000 for _, ms, _ in chunk], dtype=np.int64)
        values = np.array([v for _, _, v in chunk])
        order = np.lexsort((ts, dev))
        touched = window.feed(dev[order], ts[order], values[order], frame)
        for d, t, v in zip(dev[order], ts[order], values[order], strict=True):
            received.setdefault(int(d), []).append((int(t), arrival, float(v)))
            arrival += 1
        for function in ("mean", "min", "max", "range"):
            devices, n, stat = window.stats(touched, function)
            for d, count, value in zip(devices, n, stat, strict=True):
                expected_n, expected = recompute(received[int(d)], length, function)
                assert count == expected_n
                assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-6 * (1 + abs(ref)))


def test_late_points_count_only_while_their_bucket_is_in_the_window() -> None:
    codes = DeviceCodes()
    window = Window("k", 60 * S, 0.0, codes)  # buckets of 1 s
    [d] = codes.encode(np.array(DEVICES[:1], dtype=object))

    def feed(frame: int, *series: tuple[float, float]) -> tuple[float, float]:
        ts = np.array([T0 + int(s * S) for s, _ in series], dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        values = np.array([v for _, v in series])[order]
        window.feed(np.full(len(ts), d), ts[order], values, frame)
        _, n, mean = window.stats(np.array([d]), "mean")
        return float(n[0]), float(mean[0])

    assert feed(1, (100, 10.0), (130, 20.0)) == (2, 15.0)
    assert feed(2, (50, 1000.0)) == (2, 15.0)  # older than the window ending at 130 s: ignored
    assert feed(3, (70.5, 30.0)) == (3, 20.0)  # late but its bucket [70, 71) is inside: counted
    assert feed(4, (131, 40.0)) == (3, 70 / 3)  # the window moves to 131 s: the bucket at 70 s has left
    # A frame is sorted first: its window ends at 135 s, so its point at 74 s is out, whatever the order.
    assert feed(5, (135, 0.0), (74, 1000.0)) == (4, 17.5)
    assert feed(6, (75, 10.0)) == (5, 16.0)  # the bucket at 75 s is still in the window ending at 135 s


def test_rules_over_the_same_window_share_it_and_add_points_once() -> None:
    """Two rules (different functions and targets) in one book: as each alone, and the points added once."""
    codes = DeviceCodes()
    book = WindowBook()
    kind = rule_type("statistical")
    base = {"key": "vib", "window": "1m", "operator": ">", "value": 0.5}
    rules = [
        Rule(id="a", name="a", type="statistical", condition={**base, "function": "stddev"}, actions=[]),
        Rule(id="b", name="b", type="statistical", condition={**base, "function": "mean"}, actions=[]),
    ]
    shared = [RuleState(context=EvalContext(codes=codes, windows=book)) for _ in rules]
    alone = [RuleState() for _ in rules]
    rng = np.random.default_rng(7)
    for step in range(20):
        book.frame += 1
        ts = T0 + (step * 3 + np.arange(3)) * S
        rows = [(DEVICES[i], int(t), float(rng.normal(0, 1))) for t in ts for i in range(3)]
        for rule, state, own in zip(rules, shared, alone, strict=True):
            # Rule "b" reads only the first two devices.
            mine = [r for r in rows if rule.id == "a" or r[0] != DEVICES[2]]
            got = kind.evaluate(rule, points_of(mine, codes), state)
            own_codes = own.context.device_codes()
            expected = kind.evaluate(rule, points_of(mine, own_codes), own)
            assert_same_events(got, expected)
    [window] = book.windows.values()
    assert window.stats(codes.encode(np.array(DEVICES, dtype=object)), "mean")[1].tolist() == [60, 60, 60]


def points_of(rows: list[tuple[str, int, float]], codes: DeviceCodes) -> Points:
    ids = np.array([r[0] for r in rows], dtype=object)
    return Points(
        codes.encode(ids),
        ids,
        np.full(len(rows), "vib", dtype=object),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows]),
    )


def assert_same_events(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    columns: Any = ["device_id", "kind", "ts"]
    assert got[columns].values.tolist() == expected[columns].values.tolist()
    assert np.allclose(got["value"].to_numpy(float), expected["value"].to_numpy(float))


def test_window_rebuilt_from_telemetry_equals_the_live_one(rig: Rig) -> None:
    """After a restart the window is read back (SQL aggregates, binary COPY) into the same buckets."""
    [d, empty] = rig.devices(2)
    rng = np.random.default_rng(3)
    # 90 s window: buckets of 1.5 s; about 280 points over 200 s (distinct times: SQL breaks ties its way).
    seconds = np.unique(np.round(rng.uniform(0, 200, 280), 1))
    series = [(float(s), float(v)) for s, v in zip(seconds, rng.normal(20, 3, len(seconds)), strict=True)]
    rig.store(d, "temp", series)
    length = 90 * S
    base = int(pd.Timestamp(T0_DB).value)
    newest = (base + 201 * S, 25.0)
    codes = DeviceCodes()
    live = Window("temp", length, 20.0, codes)
    dev = codes.encode(np.array([d] * len(series), dtype=object))
    ts = np.array([base + round(s * 1e6) * 1000 for s, _ in series], dtype=np.int64)
    live.feed(dev, ts, np.array([v for _, v in series]), 1)
    live.feed(dev[:1], np.array([newest[0]]), np.array([newest[1]]), 2)
    loader = partial(window_aggregates, rig.platform.engine)
    rebuilt = Window("temp", length, 20.0, codes, loader)  # inline reads: no background loader
    rebuilt.feed(dev[:1], np.array([newest[0]]), np.array([newest[1]]), 1)
    for function in FUNCTIONS:
        a, b = live.stats(dev[:1], function), rebuilt.stats(dev[:1], function)
        assert a[1].tolist() == b[1].tolist() and np.allclose(a[2], b[2], rtol=1e-9), function
    found = loader([empty, d], [newest[0], newest[0]], "temp", length, bucket_ns(90), 20.0)
    assert set(found["index"].tolist()) == {1}  # the device without points has no buckets
    width = bucket_ns(90)
    start = (newest[0] - length) // width * width  # the oldest bucket, whole
    inside = [(t, v) for t, (_, v) in zip(ts.tolist(), series, strict=True) if start <= t < newest[0]]
    assert found["n"].sum() == len(inside)
    assert np.isclose(found["s"].sum(), sum(v - 20.0 for _, v in inside))
    assert found["ft"].min() == min(t for t, _ in inside) and found["lt"].max() == max(t for t, _ in inside)
