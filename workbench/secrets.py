"""Secret fields of stored documents: encrypted at rest, write-only in the API and UI.

A device's OPC-UA login (``config.username``, ``config.password``, ``config.security.private_key``) and a
webhook action's ``secret`` and ``headers`` values are stored as ``{"$sealed": <Fernet token>}``, with a
key derived (HKDF-SHA256) from the platform's secret key. Reads show ``{"set": true}`` in their place.
A write keeps the stored value where the secret is omitted or sent back as ``{"set": true}``, removes it
when sent as ``null``, and seals a new string. Code that uses a secret opens it where it is used.
"""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, select, update

from workbench.db.tables import devices, rules

SEALED = "$sealed"
SET = {"set": True}  # what a read shows in place of a stored secret
Path = tuple[str, ...]
# Secret fields, as paths into the document; "*" stands for every key of the mapping at that level.
DEVICE_CONFIG: list[Path] = [("username",), ("password",), ("security", "private_key")]
ACTION: list[Path] = [("secret",), ("headers", "*")]


class SecretError(ValueError):
    """A sealed value cannot be opened (the secret key changed, or the value was tampered with)."""


@functools.lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"workbench stored secrets v1")
    return Fernet(base64.urlsafe_b64encode(derived.derive(secret_key.encode())))


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is a sealed secret."""
    return isinstance(value, dict) and set(value) == {SEALED}


def seal_value(value: str, secret_key: str) -> dict[str, str]:
    """``value`` encrypted for storage."""
    return {SEALED: _fernet(secret_key).encrypt(value.encode()).decode()}


def open_value(value: Any, secret_key: str) -> Any:
    """The plain value of a sealed secret (anything else is returned as it is)."""
    if not is_sealed(value):
        return value
    try:
        return _fernet(secret_key).decrypt(value[SEALED].encode()).decode()
    except InvalidToken:
        raise SecretError("a stored secret cannot be decrypted with this secret key") from None


def _slots(doc: Any, path: Path) -> Iterable[tuple[dict[str, Any], str]]:
    """(mapping, key) of every place ``path`` names in ``doc`` that holds a value."""
    if not isinstance(doc, dict) or not path:
        return
    head, rest = path[0], path[1:]
    keys = list(doc) if head == "*" else [head] if head in doc else []
    for key in keys:
        if rest:
            yield from _slots(doc[key], rest)
        else:
            yield doc, key


def redact(doc: Any, paths: list[Path]) -> Any:
    """A copy of ``doc`` with each stored secret shown as ``{"set": true}``."""
    if not isinstance(doc, dict):
        return doc
    shown = copy.deepcopy(doc)
    for path in paths:
        for mapping, key in _slots(shown, path):
            if mapping[key] is not None:
                mapping[key] = dict(SET)
    return shown


def open_all(doc: Any, paths: list[Path], secret_key: str) -> Any:
    """A copy of ``doc`` with each sealed secret opened (for the code that uses it)."""
    if not isinstance(doc, dict):
        return doc
    opened = copy.deepcopy(doc)
    for path in paths:
        for mapping, key in _slots(opened, path):
            mapping[key] = open_value(mapping[key], secret_key)
    return opened


def merge(new: Any, old: Any, paths: list[Path], secret_key: str) -> Any:
    """The document to store for a write of ``new`` over ``old`` (see the module docstring)."""
    if not isinstance(new, dict):
        return new
    stored = copy.deepcopy(new)
    old = old if isinstance(old, dict) else {}
    for path in paths:
        _merge_path(stored, old, path, secret_key)
    return stored


def _merge_path(new: dict[str, Any], old: dict[str, Any], path: Path, secret_key: str) -> None:
    head, rest = path[0], path[1:]
    if rest:
        if head not in new and isinstance(old.get(head), dict):
            new[head] = copy.deepcopy(old[head])  # omitted: the stored mapping is kept, secrets and all
        inner = old.get(head)
        if isinstance(new.get(head), dict):
            _merge_path(new[head], inner if isinstance(inner, dict) else {}, rest, secret_key)
        return
    keys = set(new) | set(old) if head == "*" else {head}
    for key in keys:
        if key not in new:
            if head != "*" and key in old:
                new[key] = _sealed(old[key], secret_key)  # omitted: kept
            continue
        value = new[key]
        if value == SET:
            if key in old:
                new[key] = _sealed(old[key], secret_key)  # sent back as read: kept
            else:
                del new[key]
        elif value is None:
            del new[key]  # explicitly removed
        elif isinstance(value, str):
            new[key] = seal_value(value, secret_key)
        elif not is_sealed(value):
            new[key] = seal_value(str(value), secret_key)


def _sealed(value: Any, secret_key: str) -> Any:
    return value if is_sealed(value) or value is None else seal_value(str(value), secret_key)


def seal_all(doc: Any, paths: list[Path], secret_key: str) -> Any:
    """``doc`` with every plain secret sealed (what the migration does to rows stored before)."""
    return merge(doc, {}, paths, secret_key)


def _actions(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


def merge_actions(new: Any, old: Any, secret_key: str) -> Any:
    """``merge`` for a rule's action (an object or a list): each action against the stored one at its place
    when both have the same type."""
    olds = _actions(old)

    def one(index: int, action: Any) -> Any:
        before = olds[index] if index < len(olds) else {}
        same = (
            isinstance(action, dict) and isinstance(before, dict) and before.get("type") == action.get("type")
        )
        return merge(action, before if same else {}, ACTION, secret_key)

    if isinstance(new, list):
        return [one(i, action) for i, action in enumerate(new)]
    return one(0, new)


def redact_actions(value: Any) -> Any:
    """``redact`` for a rule's action (an object or a list)."""
    if isinstance(value, list):
        return [redact(action, ACTION) for action in value]
    return redact(value, ACTION)


def open_actions(value: Any, secret_key: str) -> Any:
    """``open_all`` for a rule's action (an object or a list)."""
    if isinstance(value, list):
        return [open_all(action, ACTION, secret_key) for action in value]
    return open_all(value, ACTION, secret_key)


def seal_stored(engine: Engine, secret_key: str) -> int:
    """Seal the plain secrets of rows stored before sealing existed; how many rows changed (idempotent)."""
    changed = 0
    with engine.begin() as conn:
        for row in conn.execute(select(devices.c.id, devices.c.config)).all():
            sealed = seal_all(row.config, DEVICE_CONFIG, secret_key)
            if sealed != row.config:
                conn.execute(update(devices).where(devices.c.id == row.id).values(config=sealed))
                changed += 1
        for row in conn.execute(select(rules.c.id, rules.c.action)).all():
            sealed = merge_actions(row.action, None, secret_key)
            if sealed != row.action:
                conn.execute(update(rules).where(rules.c.id == row.id).values(action=sealed))
                changed += 1
    return changed
