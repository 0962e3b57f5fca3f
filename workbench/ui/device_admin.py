"""The devices page's writes: save, delete, connector forms, "Test connection", and the device's API keys.

Each callback calls the service function the REST API calls (:mod:`workbench.devices`,
:mod:`workbench.auth.api_keys`) with the session's user; refusals show the service's own message.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, html

from workbench import devices as service
from workbench.auth import api_keys
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.ui import connector_forms as forms
from workbench.ui import timefmt
from workbench.ui.acting import caller
from workbench.ui.session import Forbidden

REG = [State({"type": f"reg-{name}", "index": ALL}, "value") for name, _, _ in forms.REGISTER_FIELDS]
NODE = [State({"type": f"node-{name}", "index": ALL}, "value") for name, _, _ in forms.NODE_FIELDS]
TOP = [
    State({"type": "mb-field", "name": ALL}, "id"),
    State({"type": "mb-field", "name": ALL}, "value"),
    State({"type": "ua-field", "name": ALL}, "id"),
    State({"type": "ua-field", "name": ALL}, "value"),
]
FIELDS = [State(f"dev-{name}", "value") for name in ("name", "type", "area", "location")]


def error_box(error: ApiError, ident: str = "dev-error") -> Any:
    """A service's refusal as the page shows it: the message and each invalid field's reason.

    A refused role is not shown but answered as the API answers it: 403 with the same message.
    """
    if error.status in (401, 403):
        raise Forbidden(error.message)
    lines = forms.flatten(error.details) if error.details else []
    body = [html.Div(error.message), *[html.Div(line, className="small") for line in lines]]
    return dbc.Alert(body, color="danger", id=ident)


def config_from(protocol: str | None, top: list[Any], registers: list[Any], nodes: list[Any]) -> Any:
    """The config the connector form holds for ``protocol`` (None for protocols without a form)."""
    mb_ids, mb_values, ua_ids, ua_values = top
    if protocol == "modbus":
        fields = {i["name"]: v for i, v in zip(mb_ids, mb_values, strict=True)}
        columns = {
            name: values for (name, _, _), values in zip(forms.REGISTER_FIELDS, registers, strict=True)
        }
        return forms.modbus_config(fields, columns)
    if protocol == "opcua":
        fields = {i["name"]: v for i, v in zip(ua_ids, ua_values, strict=True)}
        columns = {name: values for (name, _, _), values in zip(forms.NODE_FIELDS, nodes, strict=True)}
        return forms.opcua_config(fields, columns)
    return None


def keys_section(device_id: str) -> Any:
    """The device's API keys with rotate and revoke, and a button to issue another."""
    return html.Div(
        [
            html.H3("API keys", className="h6 mt-3"),
            html.Div(key_table(device_id), id="key-list"),
            dbc.Button("Issue key", id="key-issue", size="sm", color="secondary"),
            html.Div(id="key-secret", className="mt-2"),
        ],
        id="dev-keys",
        **cast(dict[str, Any], {"data-device": device_id}),
    )


def key_table(device_id: str) -> Any:
    """The device's valid keys: name, prefix, created, last used, and their buttons."""
    engine = current_platform().engine
    found = api_keys.listing(engine, caller(), uuid.UUID(device_id), page_size=100)
    rows = [
        html.Tr(
            [
                html.Td(key["name"]),
                html.Td(html.Code(key["prefix"] + "…")),
                html.Td(timefmt.show(key["created_at"])),
                html.Td(timefmt.show(key["last_used"]) if key["last_used"] else "never"),
                html.Td(
                    [
                        dbc.Button(
                            "Rotate",
                            id={"type": "key-rotate", "id": str(key["id"])},
                            size="sm",
                            color="warning",
                            outline=True,
                            className="me-1",
                        ),
                        dbc.Button(
                            "Revoke",
                            id={"type": "key-revoke", "id": str(key["id"])},
                            size="sm",
                            color="danger",
                            outline=True,
                        ),
                    ]
                ),
            ],
            className="wb-key",
            **cast(dict[str, Any], {"data-prefix": key["prefix"]}),
        )
        for key in found["items"]
    ]
    head = html.Thead(html.Tr([html.Th(h) for h in ("Name", "Key", "Created", "Last used", "")]))
    if not rows:
        return html.P("No valid key: the device cannot send.", className="small text-muted")
    return dbc.Table([head, html.Tbody(rows)], size="sm", id="key-table")


def _secret(raw: str, what: str) -> Any:
    return dbc.Alert(
        [html.Div(f"{what} Copy it now: it is shown this once."), html.Code(raw, id="key-raw")],
        color="success",
    )


def _values(items: list[dict[str, Any]]) -> Any:
    rows = [
        html.Tr([html.Td(i["key"]), html.Td(timefmt.number(i["value"])), html.Td(timefmt.unit(i["unit"]))])
        for i in items
    ]
    head = html.Thead(html.Tr([html.Th("Key"), html.Th("Value"), html.Th("Unit")]))
    return html.Div(
        [
            html.Div(f"Read {len(items)} values.", className="small text-success"),
            dbc.Table([head, html.Tbody(rows)], size="sm"),
        ],
        id="dev-test-values",
    )


def register(ui: dash.Dash) -> None:
    """Wire saving, deleting, the connector forms, the connection test and the keys."""

    @ui.callback(
        Output("dev-result", "children"),
        Output("dev-refresh", "data"),
        Output("dev-selected", "data"),
        Input("dev-save", "n_clicks"),
        State("dev-editing", "data"),
        *FIELDS,
        State("dev-protocol", "value"),
        State("dev-connection_string", "value"),
        *TOP,
        *REG,
        *NODE,
        prevent_initial_call=True,
    )
    def save(clicks: int | None, editing: str | None, *args: Any) -> tuple[Any, Any, Any]:
        if not clicks:
            raise dash.exceptions.PreventUpdate
        name, kind, area, location, protocol, connection = args[:6]
        rest = args[6:]
        top, registers = list(rest[:4]), list(rest[4 : 4 + len(REG)])
        config = config_from(protocol, top, registers, list(rest[4 + len(REG) :]))
        fields: dict[str, Any] = {
            "name": (name or "").strip(),
            "type": (kind or "").strip(),
            "area": (area or "").strip() or None,
            "location": (location or "").strip() or None,
            "protocol": None if protocol in (None, "", "none") else protocol,
            "connection_string": (connection or "").strip() or None,
        }
        missing = [label for label in ("name", "type") if not fields[label]]
        if missing:
            return (
                dbc.Alert(f"{' and '.join(missing)} required", color="danger", id="dev-error"),
                dash.no_update,
                dash.no_update,
            )
        if config is not None:
            fields["config"] = config
        platform, principal = current_platform(), caller()
        try:
            if editing and config is not None:
                # Keys the form does not edit (max_gap, backoff, credentials) stay as they are.
                current = service.get(platform, principal, uuid.UUID(editing))
                if current["protocol"] == protocol:
                    fields["config"] = {**(current["config"] or {}), **config}
            if editing:
                row = service.change(platform, principal, uuid.UUID(editing), fields)
                shown: Any = dbc.Alert(f"Saved {row['name']}.", color="success", id="dev-saved")
            else:
                row = service.create(platform, principal, fields)
                shown = html.Div(
                    [
                        html.Div(f"Created {row['name']}.", id="dev-saved"),
                        _secret(row["api_key"], "Its API key:"),
                    ]
                )
        except ApiError as error:
            return error_box(error), dash.no_update, dash.no_update
        return shown, time.time(), {"id": str(row["id"]), "at": time.time()}

    @ui.callback(
        Output("dev-confirm-delete", "displayed"),
        Input("dev-delete", "n_clicks"),
        prevent_initial_call=True,
    )
    def ask_delete(clicks: int | None) -> bool:
        return bool(clicks)

    @ui.callback(
        Output("dev-result", "children", allow_duplicate=True),
        Output("dev-refresh", "data", allow_duplicate=True),
        Output("dev-selected", "data", allow_duplicate=True),
        Input("dev-confirm-delete", "submit_n_clicks"),
        State("dev-editing", "data"),
        prevent_initial_call=True,
    )
    def delete(confirmed: int | None, editing: str | None) -> tuple[Any, Any, Any]:
        if not confirmed or not editing:
            raise dash.exceptions.PreventUpdate
        try:
            service.remove(current_platform(), caller(), uuid.UUID(editing))
        except ApiError as error:
            return error_box(error), dash.no_update, dash.no_update
        done = dbc.Alert("Device deleted.", color="success", id="dev-deleted")
        return done, time.time(), {"id": None, "at": time.time()}

    @ui.callback(
        Output("dev-test-result", "children"),
        Input("dev-test", "n_clicks"),
        State("dev-protocol", "value"),
        State("dev-connection_string", "value"),
        *TOP,
        *REG,
        *NODE,
        prevent_initial_call=True,
    )
    def test(clicks: int | None, protocol: str | None, connection: str | None, *rest: Any) -> Any:
        if not clicks:
            raise dash.exceptions.PreventUpdate
        config = config_from(
            protocol, list(rest[:4]), list(rest[4 : 4 + len(REG)]), list(rest[4 + len(REG) :])
        )
        if config is None:
            return dbc.Alert(
                "Choose Modbus or OPC-UA to test a connection.", color="warning", id="dev-test-error"
            )
        try:
            values = service.try_connection(
                current_platform(), caller(), protocol or "", config, (connection or "").strip() or None
            )
        except ApiError as error:
            return error_box(error, "dev-test-error")
        return _values(values)

    @ui.callback(
        Output("reg-rows", "children"),
        Input("reg-add", "n_clicks"),
        *REG,
        prevent_initial_call=True,
    )
    def add_register(clicks: int | None, *columns: list[Any]) -> Any:
        by_name = {
            name: list(values) for (name, _, _), values in zip(forms.REGISTER_FIELDS, columns, strict=True)
        }
        count = max((len(v) for v in by_name.values()), default=0)
        rows = [{name: by_name[name][i] for name in by_name} for i in range(count)]
        return forms.register_rows([*rows, {}])

    @ui.callback(
        Output("node-rows", "children"),
        Input("node-add", "n_clicks"),
        *NODE,
        prevent_initial_call=True,
    )
    def add_node(clicks: int | None, nodes: list[Any], keys: list[Any]) -> Any:
        rows = [{"node": n, "key": k} for n, k in zip(nodes, keys, strict=True)]
        return forms.node_rows([*rows, {}])

    @ui.callback(
        Output("key-list", "children"),
        Output("key-secret", "children"),
        Input("key-issue", "n_clicks"),
        Input({"type": "key-rotate", "id": ALL}, "n_clicks"),
        Input({"type": "key-revoke", "id": ALL}, "n_clicks"),
        State("dev-editing", "data"),
        prevent_initial_call=True,
    )
    def keys(
        issue: int | None, rotate: list[Any], revoke: list[Any], device_id: str | None
    ) -> tuple[Any, Any]:
        if not device_id or not ctx.triggered or not ctx.triggered[0]["value"]:
            raise dash.exceptions.PreventUpdate  # buttons drawn anew, none clicked
        engine, principal, trigger = current_platform().engine, caller(), ctx.triggered_id
        try:
            if trigger == "key-issue":
                name = f"key {time.strftime('%Y-%m-%d %H:%M')}"
                secret = _secret(
                    api_keys.issue(engine, principal, uuid.UUID(device_id), name)["api_key"], "New key:"
                )
            elif trigger["type"] == "key-rotate":
                fresh = api_keys.rotate(engine, principal, uuid.UUID(trigger["id"]))
                secret = _secret(fresh["api_key"], "Rotated: the old key is revoked. New key:")
            else:
                api_keys.revoke(engine, principal, uuid.UUID(trigger["id"]))
                secret = dbc.Alert("Key revoked.", color="warning", id="key-revoked")
        except ApiError as error:
            return dash.no_update, error_box(error, "key-error")
        return key_table(device_id), secret
