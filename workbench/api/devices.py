"""``/api/v1/devices``: the device registry, status, config (retained MQTT) and commands."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma

from workbench import devices as service
from workbench.api.common import (
    PageArgs,
    PageSchema,
    Strict,
    fetch_row,
    make_blueprint,
    not_found,
    query_args,
)
from workbench.api.errors import ApiError
from workbench.auth.guard import current_principal, require
from workbench.db.tables import device_commands
from workbench.platform import current_platform
from workbench.protocols import commands
from workbench.severity import SEVERITIES

blp = make_blueprint("devices", "/devices", "Device registry, status, configuration and commands")

STATUSES = service.STATUSES
_NAME = ma.validate.Length(min=1, max=255)


class DeviceFields(Strict):
    """Fields a client may set on a device."""

    name = ma.fields.String(validate=_NAME)
    type = ma.fields.String(validate=ma.validate.Length(min=1, max=50))
    location = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=255))
    area = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=100))
    protocol = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=50))
    connection_string = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=2000))
    config = ma.fields.Dict(keys=ma.fields.String(), allow_none=True)
    metadata = ma.fields.Dict(keys=ma.fields.String(), allow_none=True)
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))


class DeviceCreateSchema(DeviceFields):
    """A new device (name and type required)."""

    name = ma.fields.String(required=True, validate=_NAME)
    type = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=50))
    rate_limit = ma.fields.Integer(
        load_default=1000,
        validate=ma.validate.Range(min=1, max=10_000_000),
        metadata={"description": "requests/hour allowed for the device's API key"},
    )


class DeviceSchema(ma.Schema):
    """A device as the API shows it."""

    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    type = ma.fields.String(required=True)
    location = ma.fields.String(allow_none=True)
    area = ma.fields.String(allow_none=True)
    protocol = ma.fields.String(allow_none=True)
    connection_string = ma.fields.String(allow_none=True)
    config = ma.fields.Dict(allow_none=True)
    metadata = ma.fields.Dict(allow_none=True)
    status = ma.fields.String(required=True)
    status_detail = ma.fields.String(allow_none=True, metadata={"description": "why (e.g. which nodes fail)"})
    last_seen = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class ListedDeviceSchema(DeviceSchema):
    """A device in the list, with its alarm state."""

    alarm_severity = ma.fields.String(
        allow_none=True, metadata={"description": "the worst open alarm's severity", "enum": list(SEVERITIES)}
    )
    open_alarms = ma.fields.Integer(required=True, metadata={"description": "active or acknowledged alerts"})


class CreatedDeviceSchema(DeviceSchema):
    """A new device with its API key, shown this once."""

    api_key = ma.fields.String(required=True, metadata={"description": "shown once; stored only hashed"})
    api_key_id = ma.fields.UUID(required=True)


class DeviceListArgs(PageArgs):
    """Filters of the device list."""

    type = ma.fields.String(validate=ma.validate.Length(max=50))
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    area = ma.fields.String(validate=ma.validate.Length(max=100))
    protocol = ma.fields.String(validate=ma.validate.Length(max=50))
    search = ma.fields.String(
        validate=ma.validate.Length(max=100), metadata={"description": "in name or location"}
    )
    sort = ma.fields.String(load_default="name", validate=ma.validate.OneOf(service.SORTS))
    descending = ma.fields.Boolean(load_default=False)


class DevicePageSchema(PageSchema):
    """A page of devices."""

    items = ma.fields.List(ma.fields.Nested(ListedDeviceSchema), required=True)


class StatusSchema(ma.Schema):
    """A device's connection state and what it last sent."""

    id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True)
    status_detail = ma.fields.String(allow_none=True, metadata={"description": "why (e.g. which nodes fail)"})
    last_seen = ma.fields.DateTime(allow_none=True)
    keys = ma.fields.Integer(required=True, metadata={"description": "telemetry keys with a latest value"})
    latest_timestamp = ma.fields.DateTime(allow_none=True)


class ConfigSchema(Strict):
    """A configuration document for the device (replaces the stored one)."""

    config = ma.fields.Dict(keys=ma.fields.String(), required=True)


class CommandSchema(Strict):
    """A command for the device."""

    command = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    params = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)


class DeviceCommandSchema(ma.Schema):
    """A command and how its delivery went."""

    id = ma.fields.UUID(required=True)
    device_id = ma.fields.UUID(required=True)
    command = ma.fields.String(required=True)
    protocol = ma.fields.String(required=True, metadata={"description": "mqtt, modbus, opcua or sparkplug"})
    params = ma.fields.Dict(required=True, metadata={"description": "the delivery plan (checked parameters)"})
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(commands.STATUSES),
        metadata={"enum": list(commands.STATUSES)},
    )
    reason = ma.fields.String(allow_none=True, metadata={"description": "why it failed"})
    result = ma.fields.Raw(
        allow_none=True, metadata={"description": "what the device answered", "type": "object"}
    )
    issued_by = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class DeviceCommandListSchema(ma.Schema):
    """A device's recent commands."""

    items = ma.fields.List(ma.fields.Nested(DeviceCommandSchema), required=True)


class TestConnectionSchema(Strict):
    """A connector config to read once."""

    protocol = ma.fields.String(required=True, validate=ma.validate.OneOf(("modbus", "opcua")))
    config = ma.fields.Dict(keys=ma.fields.String(), required=True)
    connection_string = ma.fields.String(load_default=None, allow_none=True)


class ReadValueSchema(ma.Schema):
    """One value the device answered."""

    key = ma.fields.String(required=True)
    value = ma.fields.Raw(allow_none=True, metadata={"description": "a number, text or boolean"})
    unit = ma.fields.String(allow_none=True)
    quality = ma.fields.Integer(allow_none=True)


class ReadValuesSchema(ma.Schema):
    """What a connection test read."""

    items = ma.fields.List(ma.fields.Nested(ReadValueSchema), required=True)


class PublishedSchema(ma.Schema):
    """What was published, where."""

    topic = ma.fields.String(required=True)
    payload = ma.fields.Dict(required=True)


@blp.route("", methods=["GET"])
@require("devices:read")
@query_args(blp, DeviceListArgs)
@blp.response(200, DevicePageSchema)
def list_devices(args: dict[str, Any]) -> dict[str, Any]:
    """Devices filtered by type, status, area, protocol or text in name or location, sorted (by name)."""
    return service.search(
        current_platform(),
        current_principal(),
        {k: args[k] for k in (*service.FILTERS, "search") if k in args},
        sort=args["sort"],
        descending=args["descending"],
        page=args["page"],
        page_size=args["page_size"],
    )


@blp.route("", methods=["POST"])
@require("devices:write")
@blp.arguments(DeviceCreateSchema)
@blp.response(201, CreatedDeviceSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Register a device; the answer carries its API key, shown this once."""
    rate_limit = body.pop("rate_limit")
    return service.create(current_platform(), current_principal(), body, rate_limit)


@blp.route("/test-connection", methods=["POST"])
@require("devices:write")
@blp.arguments(TestConnectionSchema)
@blp.response(200, ReadValuesSchema)
@blp.alt_response(502, description="The device could not be read (the error by name)")
def test_connection(body: dict[str, Any]) -> dict[str, Any]:
    """Read a Modbus or OPC-UA config once (nothing is saved): the values it answers, or why not."""
    values = service.try_connection(
        current_platform(), current_principal(), body["protocol"], body["config"], body["connection_string"]
    )
    return {"items": values}


@blp.route("/<uuid:device_id>", methods=["GET"])
@require("devices:read")
@blp.response(200, DeviceSchema)
def get(device_id: uuid.UUID) -> dict[str, Any]:
    """One device (secrets in its config shown as set, never read back)."""
    return service.get(current_platform(), current_principal(), device_id)


@blp.route("/<uuid:device_id>", methods=["PUT"])
@require("devices:write")
@blp.arguments(DeviceFields)
@blp.response(200, DeviceSchema)
def update_device(body: dict[str, Any], device_id: uuid.UUID) -> dict[str, Any]:
    """Change a device's fields (only those sent); config secrets not sent are kept."""
    return service.change(current_platform(), current_principal(), device_id, body)


@blp.route("/<uuid:device_id>", methods=["DELETE"])
@require("devices:write")
@blp.response(204)
def delete_device(device_id: uuid.UUID) -> None:
    """Delete a device, its keys, latest values and telemetry (telemetry has no foreign key)."""
    service.remove(current_platform(), current_principal(), device_id)


@blp.route("/<uuid:device_id>/status", methods=["GET"])
@require("devices:read")
@blp.response(200, StatusSchema)
def status(device_id: uuid.UUID) -> dict[str, Any]:
    """Connection state, last contact and how many keys the device reports."""
    return service.status(current_platform(), current_principal(), device_id)


@blp.route("/<uuid:device_id>/config", methods=["POST"])
@require("devices:write")
@blp.arguments(ConfigSchema)
@blp.response(200, PublishedSchema)
@blp.alt_response(503, description="No MQTT broker connected")
def push_config(body: dict[str, Any], device_id: uuid.UUID) -> dict[str, Any]:
    """Store the device's config and publish it retained to ``insa/devices/{id}/config``.

    Secrets in it are stored sealed and published (and answered) only as ``{"set": true}``.
    """
    return service.push_config(current_platform(), current_principal(), device_id, body["config"])


@blp.route("/<uuid:device_id>/command", methods=["POST"])
@require("devices:command")
@blp.arguments(CommandSchema)
@blp.response(202, DeviceCommandSchema)
@blp.alt_response(503, description="No MQTT broker connected")
def command(body: dict[str, Any], device_id: uuid.UUID) -> dict[str, Any]:
    """Send a command in the device's protocol; its status is followed under ``/commands/{id}``.

    MQTT devices get JSON on ``insa/devices/{id}/command`` (``sent``). Modbus (``write`` {key, value}),
    OPC-UA (``write`` {node or key, value}, ``call`` {method, args}) and Sparkplug (``write`` {metric, value}
    as DCMD/NCMD, ``rebirth``) commands are ``pending`` until ingest delivers them; writes reach only what
    the device's config declares writable."""
    device = service.stored(current_platform(), current_principal(), device_id)
    try:
        return commands.issue(
            current_platform(), device, body["command"], body["params"], current_principal().id
        )
    except commands.CommandError as error:
        raise ApiError(
            422, "unprocessable_entity", str(error), {"fields": {"json": {error.field: [str(error)]}}}
        ) from None
    except ConnectionError as error:
        raise ApiError(503, "broker_unavailable", f"{error}; try again later") from None


class CommandListArgs(Strict):
    """Which of a device's commands to list."""

    status = ma.fields.String(
        validate=ma.validate.OneOf(commands.STATUSES),
        metadata={"description": "only commands in this status (``pending``: not yet delivered)"},
    )


@blp.route("/<uuid:device_id>/commands", methods=["GET"])
@require("devices:read")
@query_args(blp, CommandListArgs)
@blp.response(200, DeviceCommandListSchema)
def list_commands(args: dict[str, Any], device_id: uuid.UUID) -> dict[str, Any]:
    """The device's last 50 commands (of one ``status`` if given), newest first. A device's own API key
    reads its own commands (and its config at ``GET /devices/{id}``), and no other device's."""
    service.get(current_platform(), current_principal(), device_id)
    return {"items": commands.recent(current_platform().engine, device_id, status=args.get("status"))}


@blp.route("/<uuid:device_id>/commands/<uuid:command_id>", methods=["GET"])
@require("devices:read")
@blp.response(200, DeviceCommandSchema)
def get_command(device_id: uuid.UUID, command_id: uuid.UUID) -> dict[str, Any]:
    """One command and its status (``pending``, ``sending``, ``sent``, ``acknowledged``, ``failed``)."""
    service.get(current_platform(), current_principal(), device_id)
    row = fetch_row(device_commands, command_id, "command")
    if row["device_id"] != device_id:
        raise not_found("command", command_id)
    return row
