"""Notebook parameters are data, never code: the one check every path that runs a notebook goes through.

papermill writes each parameter as ``name = value`` into a cell of the notebook it runs: a name that is not
an identifier (``"x = 1\\nimport os; ...\\ny"``) or a value that is not plain data would run as code. So a
caller may only set the names the notebook's cell tagged ``parameters`` declares, each to a JSON value
(``null``, true/false, a finite number, a string, a list or an object of them) of the type of the declared
default: ``lam = 0.1`` takes a number, ``side = "both"`` a string, ``keys = None`` any JSON value. The
declarations are read from the cell's source with :mod:`ast` (never executed). Rules
(``condition.parameters``), reports (request, schedule), script actions that run notebooks and the runner
itself (the last gate before a kernel) call :func:`check`; values the platform sets itself (``device``,
``start``, ``report_dir``...) go through :func:`supplied`, which keeps only the names the notebook declares.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

# The JSON types a declared default stands for; "any" when the default is None or not a literal.
_KINDS: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
}
_ANNOTATIONS = {kind.__name__: name for kind, name in _KINDS.items()}
_PLAIN: dict[str, type] = {"boolean": bool, "string": str, "array": list, "object": dict}
_DESCRIBED = {
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "an object",
    "any": "any JSON value",
}
MAX_DEPTH = 32
CACHE_SIZE = 256
_cache: dict[tuple[str, int, int], dict[str, Declared]] = {}
_cache_lock = threading.Lock()


class ParameterError(ValueError):
    """A notebook parameter is refused; the message names it (and the allowed names)."""


@dataclass(frozen=True)
class Declared:
    """One name the ``parameters`` cell assigns, with the JSON kind its default (or annotation) implies."""

    name: str
    kind: str


def declared(path: Path) -> dict[str, Declared]:
    """The parameters ``path``'s cell tagged ``parameters`` declares, in order (cached per file version)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    found = declared_in(nbformat.read(path, as_version=4))
    with _cache_lock:
        if len(_cache) >= CACHE_SIZE:  # notebooks edited many times over a long run: start afresh
            _cache.clear()
        _cache[key] = found
    return found


def declared_in(nb: Any) -> dict[str, Declared]:
    """The parameters a notebook node's ``parameters`` cell declares; empty when it has no such cell."""
    cell = _parameters_cell(nb)
    if cell is None:
        return {}
    found: dict[str, Declared] = {}
    for statement in _statements(cell.source):
        if isinstance(statement, ast.Assign):
            targets, value, annotation = statement.targets, statement.value, None
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value, annotation = [statement.target], statement.value, statement.annotation
        else:
            continue
        kind = _kind(value, annotation)
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = Declared(target.id, kind)
    return found


def defaults(path: Path) -> dict[str, Any]:
    """The literal default of each parameter ``path`` declares (names whose default is an expression are
    left out)."""
    cell = _parameters_cell(nbformat.read(path, as_version=4))
    found: dict[str, Any] = {}
    for statement in _statements(cell.source if cell is not None else ""):
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        targets = (
            statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
        )
        try:
            literal = ast.literal_eval(value) if value is not None else None
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        for target in targets:
            if value is not None and isinstance(target, ast.Name):
                found[target.id] = literal
    return found


def _parameters_cell(nb: Any) -> Any:
    """The notebook's code cell tagged ``parameters`` (None when it has none)."""
    return next(
        (
            cell
            for cell in nb.cells
            if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])
        ),
        None,
    )


def _statements(source: str) -> list[ast.stmt]:
    """The cell's top-level statements; line by line when the whole does not parse (an IPython magic)."""
    try:
        return ast.parse(source).body
    except SyntaxError:
        pass
    statements: list[ast.stmt] = []
    for line in source.splitlines():
        try:
            statements.extend(ast.parse(line).body)
        except SyntaxError:
            continue
    return statements


def _kind(value: ast.expr, annotation: ast.expr | None) -> str:
    if isinstance(annotation, ast.Name) and annotation.id in _ANNOTATIONS:
        return _ANNOTATIONS[annotation.id]
    try:
        default = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return "any"
    return _KINDS.get(type(default), "any")


def check(
    path: Path,
    values: Mapping[str, Any],
    *,
    reserved: Iterable[str] = (),
    label: str | None = None,
) -> dict[str, Any]:
    """``values`` as plain JSON data if every name is one ``path`` declares (and not ``reserved``: the
    platform sets those) and every value is JSON of the declared type; else :class:`ParameterError`."""
    if not isinstance(values, Mapping):
        raise ParameterError("parameters must be an object of name: value")
    label = label or path.name
    known = declared(path)
    fixed = set(reserved)
    allowed = [name for name in known if name not in fixed]
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ParameterError(
                f"{label}: parameter name {_shown(name)} is not an identifier; allowed: {_listed(allowed)}"
            )
        if name in fixed:
            raise ParameterError(f"{label}: parameter {name!r} is set by the platform")
        if name not in known:
            raise ParameterError(f"{label}: unknown parameter {name!r}; allowed: {_listed(allowed)}")
        checked[name] = _typed(value, known[name].kind, f"{label}: parameter {name!r}")
    return checked


def supplied(path: Path, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values the platform sets (``device``, ``start``, ``report_dir``...), kept for the names ``path``
    declares and checked to be JSON (their names are the platform's own, their types are not enforced)."""
    known = declared(path)
    return {
        name: json_value(value, f"{path.name}: parameter {name!r}")
        for name, value in values.items()
        if name in known
    }


def plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` if every name is an identifier and every value JSON (no declaration needed): what the
    code that writes the injected cell (:mod:`workbench.notebooks.execute`) asserts, whoever called it."""
    for name in values:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ParameterError(f"parameter name {_shown(name)} is not an identifier")
    return {name: json_value(value, f"parameter {name!r}") for name, value in values.items()}


def json_value(value: Any, where: str = "value", depth: int = 0) -> Any:
    """``value`` if it is plain JSON data (str keys, finite numbers), else :class:`ParameterError`."""
    if depth > MAX_DEPTH:
        raise ParameterError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(f"{where}: {value} is not a finite number")
        return value
    if isinstance(value, list | tuple):
        return [json_value(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ParameterError(f"{where}: object keys must be strings")
        return {key: json_value(item, where, depth + 1) for key, item in value.items()}
    raise ParameterError(f"{where}: {type(value).__name__} is not a JSON value")


def _typed(value: Any, kind: str, where: str) -> Any:
    value = json_value(value, where)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)  # 80.0 from a JavaScript client
    if (
        kind == "any"
        or (kind == "number" and numeric)
        or (kind == "integer" and numeric and isinstance(value, int))
        or (kind in _PLAIN and isinstance(value, _PLAIN[kind]))
    ):
        return value
    raise ParameterError(f"{where} must be {_DESCRIBED[kind]}, not {json.dumps(value)[:80]}")


def _shown(name: Any) -> str:
    """A refused name as the message shows it: quoted, and cut short (the caller chose its length)."""
    shown = repr(name)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "none (the notebook declares no parameters)"
