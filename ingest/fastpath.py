"""The fast path of MQTT ingest: rows straight from the common messages, without Reading objects.

A device sending the design's JSON message, or a bare number on ``telemetry/KEY``, with a known device,
keys and units already seen, finite numbers and a valid timestamp, produces exactly the rows the full
path (codecs, then ``Validator.validate``) would. Anything else, valid or not, makes ``message`` or
``single`` answer False and the caller sends the message down the full path, which keeps every rule
and explains every rejection. A message is taken whole or not at all, so nothing is written twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.validation import KEY_PATTERN, MAX_UNIT, Rejected, Row, Validator, parse_timestamp

_UNSEEN = object()


class FastRows:
    """Collects fast-path rows for one batch of messages (caches live as long as the batch)."""

    def __init__(self, validator: Validator, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self.low = self.now - validator.bounds.max_age
        self.high = self.now + validator.bounds.max_future
        self.limit = validator.bounds.max_abs_value
        self.validator = validator
        self.rows: list[Row] = []
        self._devices: dict[str, Any] = {}
        self._stamps: dict[Any, datetime | None] = {}
        self._metas: dict[bytes, tuple[int | None, bytes | None]] = {}

    def _device(self, text: str) -> tuple[uuid.UUID, str] | None:
        found = self._devices.get(text, _UNSEEN)
        if found is _UNSEEN:
            found = None
            if len(text) == 36 and text.islower():  # canonical text; anything else takes the full path
                info = self.validator.directory.lookup(text)
                if info is not None:
                    found = (info.id, text)
            self._devices[text] = found
        return found

    def _stamp(self, raw: Any) -> datetime | None:
        if raw is None:
            return self.now
        kind = type(raw)
        if kind is not str and kind is not int and kind is not float:
            return None
        stamp = self._stamps.get(raw, _UNSEEN)
        if stamp is _UNSEEN:
            try:
                stamp = parse_timestamp(raw)
            except Rejected:
                stamp = None
            else:
                if not self.low <= stamp <= self.high:
                    stamp = None
            self._stamps[raw] = stamp
        return stamp  # type: ignore[return-value]

    def _key(self, key: str) -> bool:
        # The same rule and cache as Validator._row, so the first message of a new key is fast too.
        good = self.validator.good_keys
        if key in good:
            return True
        if not KEY_PATTERN.fullmatch(key) or len(good) >= 100_000:
            return False
        good.add(key)
        return True

    def _unit(self, unit: Any) -> bool:
        good = self.validator.good_units
        if type(unit) is not str or len(unit) > MAX_UNIT or "\x00" in unit or len(good) >= 10_000:
            return False
        good.add(unit)
        return True

    def single(self, device_text: str, key: str, payload: bytes) -> bool:
        """Take a bare-number ``telemetry/KEY`` message; False sends it down the full path."""
        device = self._device(device_text)
        if device is None or not self._key(key):
            return False
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        kind = type(value)
        if kind is int:
            if not -self.limit <= value <= self.limit:
                return False
            value = float(value)
        elif (
            kind is not float or not -self.limit <= value <= self.limit
        ):  # also NaN/inf  # not a number, or NaN/inf
            return False
        self.rows.append((self.now, device[0], key, value, None, 100, None, None, device[1]))
        return True

    def point(self, item: Any, device_id: Any) -> bool:
        """Take one HTTP point ``{key, value, timestamp?, unit?, quality?}`` of device ``device_id``."""
        if type(item) is not dict or "telemetry" in item or "metadata" in item:
            return False
        if type(device_id) is not str:
            return False
        device = self._device(device_id)
        key = item.get("key")
        if device is None or type(key) is not str or not self._key(key):
            return False
        value: Any = item.get("value")
        kind = type(value)
        if kind is int:
            if not -self.limit <= value <= self.limit:
                return False
            value = float(value)
        elif kind is not float or not -self.limit <= value <= self.limit:  # also NaN/inf
            return False
        unit = item.get("unit")
        if unit is not None and unit not in self.validator.good_units and not self._unit(unit):
            return False
        quality = item.get("quality")
        if quality is None:
            quality = 100
        elif type(quality) is not int or not 0 <= quality <= 100:
            return False
        stamp = self._stamp(item.get("timestamp"))
        if stamp is None:
            return False
        self.rows.append((stamp, device[0], key, value, unit, quality, None, None, device[1]))
        return True

    def message(self, device_text: str, payload: bytes) -> bool:
        """Take a design JSON message ``{timestamp, telemetry, metadata}``; False: use the full path."""
        device = self._device(device_text)
        if device is None:
            return False
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        if type(body) is not dict:
            return False
        telemetry = body.get("telemetry")
        if type(telemetry) is not dict or not telemetry:
            return False
        stated = body.get("device_id")
        if stated is not None and (type(stated) is not str or stated.lower() != device_text):
            return False
        stamp = self._stamp(body.get("timestamp"))
        if stamp is None:
            return False
        meta = body.get("metadata")
        if meta is None:
            quality: Any = 100
            blob = None
        elif type(meta) is dict:
            quality = meta.get("quality", 100)
            if quality is None:
                quality = 100
            elif type(quality) is not int or not 0 <= quality <= 100:
                return False
            blob = None
            if len(meta) > ("quality" in meta):
                extra = {k: v for k, v in meta.items() if k != "quality"}
                blob = b"\x01" + orjson.dumps(extra, option=orjson.OPT_NON_STR_KEYS)
        else:
            return False
        good_keys, good_units = self.validator.good_keys, self.validator.good_units
        uid, text = device
        rows: list[Row] = []
        append = rows.append
        value: Any
        low, high = -self.limit, self.limit
        for key, item in telemetry.items():
            if type(item) is dict:
                if "timestamp" in item or "quality" in item:  # they change the reading: full path
                    return False
                value = item.get("value")
                unit = item.get("unit")
                if unit is not None and unit not in good_units and not self._unit(unit):
                    return False
            else:
                value, unit = item, None
            if key not in good_keys and not self._key(key):
                return False
            if type(value) is float:
                if not low <= value <= high:  # also NaN
                    return False
            elif type(value) is int and low <= value <= high:
                value = float(value)
            else:
                return False
            append((stamp, uid, key, value, unit, quality, blob, None, text))
        self.rows.extend(rows)
        return True
