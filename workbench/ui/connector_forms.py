"""Connector settings as forms: Modbus TCP registers and OPC-UA nodes, to and from ``devices.config``.

The forms only shape what was typed into a config; ``workbench.protocols`` validates it (through the
devices service), so the page names the same errors the API does.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from workbench.protocols.modbus import FUNCTIONS, ORDERS, TYPES

# Register fields in column order: (field, label, kind); kind "int"/"float" are parsed, a tuple is a choice.
REGISTER_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("key", "Key", "text"),
    ("address", "Address", "int"),
    ("function", "Table", FUNCTIONS),
    ("type", "Type", tuple(TYPES)),
    ("word_order", "Word order", ORDERS),
    ("byte_order", "Byte order", ORDERS),
    ("scale", "Scale", "float"),
    ("offset", "Offset", "float"),
    ("unit", "Unit", "text"),
    ("length", "Length (string)", "int"),
    ("writable", "Writable", ("false", "true")),
)
REGISTER_DEFAULTS = {
    "function": "holding",
    "type": "uint16",
    "word_order": "big",
    "byte_order": "big",
    "writable": "false",
}
MODBUS_FIELDS = (("host", "Host", "text"), ("port", "Port", "int"), ("unit_id", "Unit id", "int"))
MODBUS_TIMING = (("interval_ms", "Poll interval (ms)", "int"), ("timeout_ms", "Timeout (ms)", "int"))
NODE_FIELDS = (("node", "NodeId", "text"), ("key", "Key", "text"))
OPCUA_FIELDS = (
    ("endpoint", "Endpoint (opc.tcp://...)", "text"),
    ("sampling_interval_ms", "Sampling interval (ms)", "float"),
    ("timeout_ms", "Timeout (ms)", "float"),
)
# Protocols the form edits (others keep their config as JSON through the API).
FORM_PROTOCOLS = ("modbus", "opcua")


def parse(kind: Any, raw: Any) -> Any:
    """A typed value from a form field: numbers when they parse, else the text (the schema names it)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if kind == ("false", "true"):
        return raw in (True, "true")
    if kind in ("int", "float"):
        text = str(raw).strip()
        try:
            number = float(text)
        except ValueError:
            return text
        if kind == "int":
            return int(number) if number.is_integer() else text
        return number
    return raw.strip() if isinstance(raw, str) else raw


def _input(kind: Any, ident: dict[str, Any], value: Any, label: str) -> Any:
    """A cell's input, named by its field (``name``) and labelled for screen readers."""
    name = ident["type"].split("-", 1)[1]
    if isinstance(kind, tuple):
        field: Any = dbc.Select(
            id=ident, options=[{"label": o, "value": o} for o in kind], value=value, size="sm", name=name
        )
    else:
        shown = "" if value is None else str(value)
        field = dbc.Input(id=ident, value=shown, size="sm", placeholder=label, type="text", name=name)
    return html.Label([html.Span(label, className="visually-hidden"), field], className="w-100 mb-0")


def register_rows(registers: list[dict[str, Any]]) -> Any:
    """The register table: one row of inputs per register (ids ``{"type": "reg-<field>", "index": i}``)."""
    head = html.Thead(html.Tr([html.Th(label, className="small") for _, label, _ in REGISTER_FIELDS]))
    rows = []
    for index, register in enumerate(registers):
        values = {**REGISTER_DEFAULTS, **register}
        values["writable"] = str(values["writable"]).lower()
        cells = [
            html.Td(_input(kind, {"type": f"reg-{name}", "index": index}, values.get(name), label))
            for name, label, kind in REGISTER_FIELDS
        ]
        rows.append(html.Tr(cells, className="wb-register"))
    return dbc.Table(
        [head, html.Tbody(rows)], size="sm", className="mb-1 wb-form-table", id="reg-table", responsive=True
    )


def node_rows(nodes: list[dict[str, Any]]) -> Any:
    """The node table: NodeId and key per row (ids ``{"type": "node-<field>", "index": i}``)."""
    head = html.Thead(html.Tr([html.Th(label, className="small") for _, label, _ in NODE_FIELDS]))
    rows = [
        html.Tr(
            [
                html.Td(_input(kind, {"type": f"node-{name}", "index": index}, node.get(name), label))
                for name, label, kind in NODE_FIELDS
            ],
            className="wb-node",
        )
        for index, node in enumerate(nodes)
    ]
    return dbc.Table(
        [head, html.Tbody(rows)], size="sm", className="mb-1 wb-form-table", id="node-table", responsive=True
    )


def _fields(prefix: str, fields: tuple[tuple[str, str, Any], ...], config: dict[str, Any]) -> Any:
    return dbc.Row(
        [
            dbc.Col(
                html.Label(
                    [
                        html.Span(label, className="small d-block"),
                        dbc.Input(
                            id={"type": f"{prefix}-field", "name": name},
                            value="" if config.get(name) is None else str(config[name]),
                            size="sm",
                            name=name,
                        ),
                    ],
                    className="w-100",
                ),
                md=True,
            )
            for name, label, _ in fields
        ],
        className="g-2 mb-2",
    )


def modbus_form(config: dict[str, Any]) -> Any:
    """Host, port, unit, interval, timeout and the register map of a Modbus TCP device."""
    return html.Div(
        [
            _fields("mb", MODBUS_FIELDS + MODBUS_TIMING, config),
            html.Div(register_rows(list(config.get("registers") or [])), id="reg-rows"),
            dbc.Button("Add register", id="reg-add", size="sm", color="secondary", outline=True),
        ],
        id="modbus-form",
    )


def opcua_form(config: dict[str, Any]) -> Any:
    """Endpoint, intervals and the node map (NodeId → key) of an OPC-UA device."""
    nodes = [{"node": node, "key": key} for node, key in (config.get("nodes") or {}).items()]
    return html.Div(
        [
            _fields("ua", OPCUA_FIELDS, config),
            html.Div(node_rows(nodes), id="node-rows"),
            dbc.Button("Add node", id="node-add", size="sm", color="secondary", outline=True),
        ],
        id="opcua-form",
    )


def rows_from(
    columns: dict[str, list[Any]], fields: tuple[tuple[str, str, Any], ...]
) -> list[dict[str, Any]]:
    """Rows typed from the form's per-field value lists; rows left wholly empty are dropped."""
    count = max((len(values) for values in columns.values()), default=0)
    rows = []
    for index in range(count):
        row = {}
        for name, _, kind in fields:
            values = columns.get(name) or []
            value = parse(kind, values[index] if index < len(values) else None)
            if value is not None:
                row[name] = value
        if any(row.get(name) is not None for name, _, kind in fields if not isinstance(kind, tuple)):
            rows.append(row)
    return rows


def modbus_config(top: dict[str, Any], registers: dict[str, list[Any]]) -> dict[str, Any]:
    """The Modbus config from the form: top-level fields and register columns."""
    config = {name: parse(kind, top.get(name)) for name, _, kind in MODBUS_FIELDS + MODBUS_TIMING}
    config = {name: value for name, value in config.items() if value is not None}
    config["registers"] = rows_from(registers, REGISTER_FIELDS)
    return config


def opcua_config(top: dict[str, Any], nodes: dict[str, list[Any]]) -> dict[str, Any]:
    """The OPC-UA config from the form: endpoint, intervals and the NodeId → key map."""
    config = {name: parse(kind, top.get(name)) for name, _, kind in OPCUA_FIELDS}
    config = {name: value for name, value in config.items() if value is not None}
    config["nodes"] = {row.get("node", ""): row.get("key", "") for row in rows_from(nodes, NODE_FIELDS)}
    return config


def flatten(errors: Any, path: str = "") -> list[str]:
    """Field errors as ``path: message`` lines (``registers.0.address: Not a valid integer.``)."""
    if isinstance(errors, dict):
        lines = []
        for name, inner in errors.items():
            skip = name == "_schema" or (not path and name in ("fields", "json", "config"))
            lines += flatten(inner, path if skip else f"{path}.{name}" if path else str(name))
        return lines
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [f"{path}: {' '.join(errors)}" if path else " ".join(errors)]
    if isinstance(errors, list):
        return [line for inner in errors for line in flatten(inner, path)]
    return [f"{path}: {errors}" if path else str(errors)]
