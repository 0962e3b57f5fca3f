"""Statistical windows kept incrementally: one ring of bucket aggregates per device, per (key, window length),
shared by every rule that reads that key over that window.

A window of length ``W`` is cut into buckets of width ``w`` (W/60, at least 1 s; ``bucket_ns``). Each device
has a ring of ``W // w + 2`` slots; a slot holds one bucket's aggregate of the points that fell in it: count,
sum and sum of squares (relative to a reference value of the key, to keep the sums numerically tame), min,
max, and the oldest and newest point (time and value). A point is folded into its bucket once, when its frame
arrives (O(points)); a statistic reads at most ``W // w + 2`` slots per device (O(devices)), whatever the
number of points in the window. Nothing is recomputed from the window's points.

The window of a device ends at its watermark (its newest point's time) and holds the buckets with
``bucket + w > watermark - W``: the oldest edge is accurate to one bucket. A bucket leaves the window when
the watermark moves past it; its slot is reused by the first bucket that maps to it. So the result depends
only on which points arrived, not on their order: late and out-of-order points are added to their bucket
while the bucket is still in the window, and ignored once it has left (older than the window). Ties in time:
the first point to arrive is the oldest, the last the newest. ``tests/workbench/rules/test_windows.py``
checks every function against a recomputation from the points.

Several rules over the same key and window (different functions, thresholds or targets) share one
``Window``: the engine numbers its frames, and a device's points are added by the first rule of the frame
that receives them. History reads (engine start, devices first seen with older points) are the window's too,
one read per group of devices, on the engine's loader threads (see ``workbench.rules.statistical``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.rules.codes import DeviceCodes, grown

log = logging.getLogger(__name__)
NO_TIME = np.iinfo(np.int64).min
MAX_TIME = np.iinfo(np.int64).max
FLOATS = ("n", "s", "ss", "mn", "mx", "fv", "lv")
INTS = ("bucket", "ft", "lt")
# loader(device_ids, first_ns, key, window_ns, width_ns, ref) -> bucket aggregates of the stored points of
# each device in [first - window, first) (bucket-aligned): {"index": position in device_ids, "bucket", "n",
# "s", "ss", "mn", "mx", "ft", "fv", "lt", "lv"} as numpy arrays (workbench.rules.store.window_aggregates).
WindowLoader = Callable[[list[str], list[int], str, int, int, float], dict[str, np.ndarray]]


def bucket_ns(window_s: float) -> int:
    """Bucket width of a window: window/60, at least one second."""
    return int(max(1.0, window_s / 60) * 1e9)


class Window:
    """Bucket rings of one key over one window length, for the devices its rules read."""

    def __init__(
        self,
        key: str,
        window_ns: int,
        ref: float,
        codes: DeviceCodes,
        loader: WindowLoader | None = None,
        background: Any = None,
    ) -> None:
        self.key = key
        self.window = window_ns
        self.width = bucket_ns(window_ns / 1e9)
        self.slots = window_ns // self.width + 2  # distinct buckets of one window never share a slot
        self.ref = ref
        self.codes = codes
        self.loader = loader
        self.background = background
        # Per device code.
        self.row = np.zeros(0, np.int64)  # its ring's row, -1: none yet
        self.wm = np.zeros(0, np.int64)  # watermark: newest point time
        self.fed = np.zeros(0, np.int64)  # the frame whose points were last added
        self.seen = np.zeros(0, bool)  # its history is read (or known not to be needed)
        self.loading = np.zeros(0, bool)  # a history read is running: its points are held
        self.warmed = np.zeros(0, np.int64)  # the engine start's read covered times before this
        # Per ring row x slot.
        self.rows = 0
        self.ring: dict[str, np.ndarray] = {
            name: np.zeros((0, self.slots), np.int64 if name in INTS else np.float64)
            for name in (*INTS, *FLOATS)
        }
        self.loads: list[tuple[np.ndarray, Future[Any], bool]] = []
        self.held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.frame = -1
        self.released = np.zeros(0, np.int64)  # devices whose held points were added in ``frame``
        self._cache: dict[bytes, dict[str, np.ndarray]] = {}  # reductions of this frame, by device set
        self._cached = -1

    # -- feeding -------------------------------------------------------------------------------------
    def begin(self, frame: int) -> None:
        """Once per frame: add finished history reads and the points held for them."""
        if frame == self.frame:
            return
        self.frame = frame
        self.released = np.zeros(0, np.int64)
        self._fit()
        if not any(load[1].done() for load in self.loads):
            return
        loads, self.loads = self.loads, []
        for new, future, warm in loads:
            if not future.done():
                self.loads.append((new, future, warm))
                continue
            try:
                found = None if future.cancelled() else future.result()
            except Exception:  # evaluate without that history rather than hold the points for ever
                log.exception("statistical window load failed")
                found = None
            if found is not None:
                self._add_history(new, found)
            self.loading[new] = False
            if warm:
                self._unseen_if_empty(new)
        if not self.held:
            return
        dev, ts, values = (np.concatenate(column) for column in zip(*self.held, strict=True))
        waiting = self.loading[dev]
        self.held = [(dev[waiting], ts[waiting], values[waiting])] if waiting.any() else []
        dev, ts, values = dev[~waiting], ts[~waiting], values[~waiting]
        order = np.lexsort((ts, dev))  # held over several frames: stable, so arrival order breaks ties
        # A device the start's read found empty may need a read of its own (points older than the start).
        added = self._admit(dev[order], ts[order], values[order])
        self.released = np.unique(added)

    def done_loads(self) -> bool:
        """A history read finished and is not added yet."""
        return any(load[1].done() for load in self.loads)

    def feed(self, dev: np.ndarray, ts: np.ndarray, values: np.ndarray, frame: int) -> np.ndarray:
        """Add a rule's points (sorted by device, time) unless added this frame; the devices to evaluate."""
        self.begin(frame)
        self._fit()
        if not len(dev):
            return dev
        heads = np.ones(len(dev), bool)
        heads[1:] = dev[1:] != dev[:-1]
        devices = dev[heads]
        fresh = self.fed[devices] != frame
        if fresh.any():
            if not fresh.all():
                rows = fresh[np.cumsum(heads) - 1]
                dev, ts, values = dev[rows], ts[rows], values[rows]
            self.fed[devices] = frame
            self._admit(dev, ts, values - self.ref)
        return devices[~self.loading[devices]]

    def _admit(self, dev: np.ndarray, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Add points (sorted by device, time; values - ref), or hold those whose window is being read."""
        self._seed(dev, ts)
        loading = self.loading[dev]
        if loading.any():  # evaluated once their windows are read
            self.held.append((dev[loading], ts[loading], values[loading]))
            dev, ts, values = dev[~loading], ts[~loading], values[~loading]
        self._add(dev, ts, values)
        return dev

    def warm(self, device_ids: list[str], now_ns: int) -> None:
        """Read the windows ending now of these devices (engine start): live batches then need no history."""
        dev = np.unique(self.codes.encode(np.array(device_ids, dtype=object)))
        self._fit()
        dev = dev[~self.seen[dev]]
        if not len(dev):
            return
        self.warmed[dev] = now_ns
        self.seen[dev] = True
        self._load(dev, np.full(len(dev), now_ns, np.int64), warm=True)
        if not self.loading[dev].any():  # read inline (no background loader)
            self._unseen_if_empty(dev)

    # -- statistics ------------------------------------------------------------------------------------
    def stats(self, dev: np.ndarray, function: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(devices with points in their window, their point counts, the function's value) for ``dev``."""
        part = self._part(dev)
        dev, n = part["dev"], part["n"]
        if function in ("min", "max", "range"):
            low, high = self._reduce(part, "low"), self._reduce(part, "high")
            if function == "range":
                return dev, n, high - low
            return dev, n, (low if function == "min" else high) + self.ref
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self._reduce(part, "s")
            mean = s / n
            if function == "mean":
                return dev, n, mean + self.ref
            last_t, last_v = self._reduce(part, "last_t"), self._reduce(part, "last_v")
            if function == "rate_of_change":
                first_t, first_v = self._reduce(part, "first_t"), self._reduce(part, "first_v")
                seconds = (last_t - first_t) / 1e9
                return dev, n, np.where(seconds > 0, (last_v - first_v) / seconds, np.nan)
            ss = self._reduce(part, "ss")
            var = np.clip((ss - s * s / n) / (n - 1), 0, None)
            std = np.where(n > 1, np.sqrt(var), np.nan)
            if function == "stddev":
                return dev, n, std
            return dev, n, np.where(std > 0, (last_v - mean) / std, np.nan)  # zscore

    def _part(self, dev: np.ndarray) -> dict[str, np.ndarray]:
        """The in-window slots of these devices; reductions of them are kept for the rest of the frame
        (rules over the same devices with other functions or thresholds read them again)."""
        if self._cached != self.frame:
            self._cache, self._cached = {}, self.frame
        key = dev.tobytes()
        part = self._cache.get(key)
        if part is None:
            rows = self.row[dev]
            dev, rows = dev[rows >= 0], rows[rows >= 0]
            edge = self.wm[dev] - self.window - self.width
            valid = self.ring["bucket"][rows] > edge[:, None]
            n = np.where(valid, self.ring["n"][rows], 0.0).sum(axis=1)
            some = n > 0
            if not some.all():
                dev, rows, valid, n = dev[some], rows[some], valid[some], n[some]
            part = self._cache[key] = {"dev": dev, "rows": rows, "valid": valid, "n": n}
        return part

    def _reduce(self, part: dict[str, np.ndarray], name: str) -> np.ndarray:
        """One reduction over the in-window slots of ``part`` (computed once per frame)."""
        found = part.get(name)
        if found is not None:
            return found
        ring, rows, valid = self.ring, part["rows"], part["valid"]
        if name in ("s", "ss"):
            found = np.where(valid, ring[name][rows], 0.0).sum(axis=1)
        elif name == "low":
            found = np.where(valid, ring["mn"][rows], np.inf).min(axis=1)
        elif name == "high":
            found = np.where(valid, ring["mx"][rows], -np.inf).max(axis=1)
        elif name in ("last_t", "last_v"):
            newest = np.where(valid, ring["lt"][rows], NO_TIME).argmax(axis=1)
            part["last_t"], part["last_v"] = ring["lt"][rows, newest], ring["lv"][rows, newest]
            found = part[name]
        else:  # first_t, first_v
            oldest = np.where(valid, ring["ft"][rows], MAX_TIME).argmin(axis=1)
            part["first_t"], part["first_v"] = ring["ft"][rows, oldest], ring["fv"][rows, oldest]
            found = part[name]
        part[name] = found
        return found

    def watermarks(self, dev: np.ndarray) -> np.ndarray:
        """Newest point time of each device."""
        return self.wm[dev]

    # -- inside ---------------------------------------------------------------------------------------
    def _fit(self) -> None:
        size = len(self.codes)
        if len(self.row) >= size:
            return
        self.row = grown(self.row, size, -1)
        self.wm = grown(self.wm, size, NO_TIME)
        self.fed = grown(self.fed, size, -1)
        self.seen = grown(self.seen, size, False)
        self.loading = grown(self.loading, size, False)
        self.warmed = grown(self.warmed, size, NO_TIME)

    def _rows(self, dev: np.ndarray) -> np.ndarray:
        """Ring rows of devices (given rows on first use)."""
        rows = self.row[dev]
        missing = rows < 0
        if missing.any():
            new = np.unique(dev[missing])
            self.row[new] = np.arange(self.rows, self.rows + len(new))
            self.rows += len(new)
            capacity = len(self.ring["n"])
            if self.rows > capacity:
                size = max(self.rows, 2 * capacity, 16)
                for name, array in self.ring.items():
                    fill = NO_TIME if name == "bucket" else 0
                    extra = np.full((size - capacity, self.slots), fill, dtype=array.dtype)
                    self.ring[name] = np.concatenate([array, extra])
            rows = self.row[dev]
        return rows

    def _add(self, dev: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Fold points (sorted by device, then time) into their buckets."""
        if not len(dev):
            return
        tails = np.ones(len(dev), bool)
        tails[:-1] = dev[1:] != dev[:-1]
        self.wm[dev[tails]] = np.maximum(self.wm[dev[tails]], ts[tails])
        bucket = ts // self.width * self.width
        keep = bucket > self.wm[dev] - self.window - self.width
        if not keep.all():
            dev, ts, values, bucket = dev[keep], ts[keep], values[keep], bucket[keep]
            if not len(dev):
                return
        starts = np.ones(len(dev), bool)
        starts[1:] = (dev[1:] != dev[:-1]) | (bucket[1:] != bucket[:-1])
        at = np.nonzero(starts)[0]
        ends = np.r_[at[1:], len(dev)] - 1
        groups = {
            "bucket": bucket[at],
            "n": np.diff(np.r_[at, len(dev)]).astype(np.float64),
            "s": np.add.reduceat(values, at),
            "ss": np.add.reduceat(values * values, at),
            "mn": np.minimum.reduceat(values, at),
            "mx": np.maximum.reduceat(values, at),
            "ft": ts[at],
            "fv": values[at],
            "lt": ts[ends],
            "lv": values[ends],
        }
        self._merge(dev[at], groups)

    def _merge(self, dev: np.ndarray, groups: dict[str, np.ndarray]) -> None:
        """Merge bucket aggregates, at most one per (device, bucket), all inside their devices' windows."""
        rows = self._rows(dev)
        bucket = groups["bucket"]
        slot = (bucket // self.width) % self.slots
        ring = self.ring
        current = ring["bucket"][rows, slot]
        new = current < bucket  # an empty slot, or one whose bucket has left the window: taken over
        if new.any():
            r, c = rows[new], slot[new]
            for name in (*INTS, *FLOATS):
                ring[name][r, c] = groups[name][new]
        same = current == bucket  # (a newer bucket in the slot: this one has left the window)
        if same.any():
            r, c = rows[same], slot[same]
            g = {name: column[same] for name, column in groups.items()}
            ring["n"][r, c] += g["n"]
            ring["s"][r, c] += g["s"]
            ring["ss"][r, c] += g["ss"]
            ring["mn"][r, c] = np.minimum(ring["mn"][r, c], g["mn"])
            ring["mx"][r, c] = np.maximum(ring["mx"][r, c], g["mx"])
            older = g["ft"] < ring["ft"][r, c]
            ring["ft"][r[older], c[older]], ring["fv"][r[older], c[older]] = g["ft"][older], g["fv"][older]
            newer = g["lt"] >= ring["lt"][r, c]
            ring["lt"][r[newer], c[newer]], ring["lv"][r[newer], c[newer]] = g["lt"][newer], g["lv"][newer]

    def _seed(self, dev: np.ndarray, ts: np.ndarray) -> None:
        """Read the stored window of devices seen for the first time (replays, backfills, new devices)."""
        heads = np.ones(len(dev), bool)
        heads[1:] = dev[1:] != dev[:-1]
        devices, first = dev[heads], ts[heads]  # sorted by time inside a device: its oldest point
        unseen = ~self.seen[devices]
        if not unseen.any():
            return
        devices, first = devices[unseen], first[unseen]
        warmed = self.warmed[devices]
        # Newer than the start's read: the read and the live batches since hold everything older.
        covered = (warmed != NO_TIME) & (first >= warmed)
        self.seen[devices] = True
        if not covered.all():
            self._load(devices[~covered], first[~covered], warm=False)

    def _load(self, dev: np.ndarray, first: np.ndarray, warm: bool) -> None:
        if self.loader is None:
            return
        ids = [str(i) for i in self.codes.decode(dev)]
        args = (ids, [int(t) for t in first], self.key, self.window, self.width, float(self.ref))
        if self.background is None:
            self._add_history(dev, self.loader(*args))
            return
        self.loading[dev] = True
        self.loads.append((dev, self.background.submit(self.loader, *args), warm))

    def _add_history(self, dev: np.ndarray, found: dict[str, np.ndarray]) -> None:
        """Add stored bucket aggregates of the devices ``dev`` (a loader's result)."""
        if not len(found.get("index", ())):
            return
        codes = dev[found["index"]]
        np.maximum.at(self.wm, codes, found["lt"])
        keep = found["bucket"] > self.wm[codes] - self.window - self.width
        self._merge(codes[keep], {name: found[name][keep] for name in (*INTS, *FLOATS)})

    def _unseen_if_empty(self, dev: np.ndarray) -> None:
        # Devices without stored points in the start's window are looked at again at their first live point:
        # only those older than the start need a read (replays, backfills).
        self.seen[dev] = self.wm[dev] != NO_TIME


@dataclass
class WindowBook:
    """The shared windows of an engine (or of one rule, in a backtest), and the number of the frame."""

    windows: dict[tuple[str, int], Window] = field(default_factory=dict)
    frame: int = 0
    private: bool = False  # one rule's own book: each evaluation is a frame

    def get(self, key: str, window_ns: int) -> Window | None:
        """The window of a key and length, if made."""
        return self.windows.get((key, window_ns))

    def make(self, key: str, window_ns: int, build: Callable[[], Window]) -> Window:
        """The window of a key and length (built the first time)."""
        found = self.windows.get((key, window_ns))
        if found is None:
            found = self.windows[(key, window_ns)] = build()
        return found

    def drop(self, key: str, window_ns: int) -> None:
        """Forget a window (its rules changed): it is read again from history."""
        self.windows.pop((key, window_ns), None)
