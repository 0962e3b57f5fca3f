"""Integer codes for device ids, so per-rule work is numpy on ints instead of pandas on strings."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import pandas as pd


class DeviceCodes:
    """A growing device id <-> small integer mapping shared by the engine and rule states."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self._lock = threading.Lock()
        self._array: np.ndarray = np.empty(0, dtype=object)
        self._known: pd.Index | None = None  # built on first lookup: an Index costs more than the rest here

    def __len__(self) -> int:
        return len(self.ids)

    def code(self, device_id: str) -> int:
        """The code of one id (assigned on first sight)."""
        found = self.index.get(device_id)
        if found is None:
            with self._lock:
                found = self.index.setdefault(device_id, len(self.ids))
                if found == len(self.ids):
                    self.ids.append(device_id)
        return found

    def encode(self, device_ids: Iterable[str] | np.ndarray | pd.Series) -> np.ndarray:
        """Codes of many ids (hash-factorised once, then one lookup per distinct id)."""
        labels, uniques = pd.factorize(np.asarray(device_ids, dtype=object))
        return self.lookup(uniques)[labels] if len(labels) else np.empty(0, dtype=np.int64)

    def lookup(self, device_ids: np.ndarray) -> np.ndarray:
        """Codes of ids (object array), new ones assigned: one hash lookup per id in C, not in Python."""
        known = self._known
        if known is None or len(known) != len(self.ids):
            known = self._known = pd.Index(self.ids[: len(self.ids)], dtype=object)
        found = np.asarray(known.get_indexer(device_ids), dtype=np.int64)
        for i in np.nonzero(found < 0)[0]:  # first sight (or not a str: looked up by its text)
            found[i] = self.code(str(device_ids[i]))
        return found

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Ids of codes (object array)."""
        if len(self._array) != len(self.ids):
            self._array = np.array(self.ids, dtype=object)
        return self._array[codes]

    def mask(self, device_ids: Iterable[str] | None) -> np.ndarray | None:
        """A boolean array over codes that is true for these ids (None: every device)."""
        if device_ids is None:
            return None
        wanted = self.lookup(np.array(list(device_ids), dtype=object))
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[wanted] = True
        return mask


def grown(array: np.ndarray, size: int, fill: object) -> np.ndarray:
    """``array`` extended with ``fill`` to at least ``size`` entries."""
    if len(array) >= size:
        return array
    extra = np.full(max(size, 2 * len(array)) - len(array), fill, dtype=array.dtype)
    return np.concatenate([array, extra])
