"""OPC-UA device config: the endpoint, the node map (NodeId → telemetry key) and its validation."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma

SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
# The OPC-UA text form of a NodeId (Part 6, 5.3.1.10): optional namespace, then i=, s=, g= or b=.
NODE_ID = re.compile(
    r"^(?:ns=\d+;|nsu=[^;]+;)?"
    r"(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/=]+)$",
    re.S,
)
KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,99}$")


class SecuritySchema(ma.Schema):
    """How to secure the OPC-UA session."""

    class Meta:
        unknown = ma.RAISE

    policy = ma.fields.String(validate=ma.validate.OneOf(SECURITY_POLICIES))
    mode = ma.fields.String(validate=ma.validate.OneOf(SECURITY_MODES))
    certificate = ma.fields.String()
    private_key = ma.fields.String()
    server_certificate = ma.fields.String()


class OpcUaConfigSchema(ma.Schema):
    """An OPC-UA device's ``config`` (other keys are kept as they are)."""

    class Meta:
        unknown = ma.INCLUDE

    endpoint = ma.fields.String(
        validate=ma.validate.Regexp(r"^opc\.tcp://", error="must start with opc.tcp://")
    )
    nodes = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)
    writable = ma.fields.List(ma.fields.String(), metadata={"description": "NodeIds commands may write"})
    methods = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        metadata={"description": "method NodeId → its object's NodeId, for commands that call methods"},
    )
    sampling_interval_ms = ma.fields.Float(validate=ma.validate.Range(min=0), allow_nan=False)
    timeout_ms = ma.fields.Float(validate=ma.validate.Range(min=100), allow_nan=False)
    username = ma.fields.String()
    password = ma.fields.String()
    security = ma.fields.Nested(SecuritySchema)

    @ma.validates("nodes")
    def _nodes(self, value: dict[str, str], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for node_id, key in value.items():
            if not NODE_ID.match(node_id):
                errors.setdefault(node_id, []).append("not a NodeId (ns=2;s=Name, ns=3;i=1001, ...)")
            if not KEY.match(key):
                errors.setdefault(node_id, []).append(f"key {key!r}: 1-100 of A-Z a-z 0-9 _ . : -")
        if errors:
            raise ma.ValidationError(errors)

    @ma.validates_schema
    def _writable_known(self, data: dict[str, Any], **kwargs: Any) -> None:
        bad = [n for n in [*data.get("writable", []), *data.get("methods", {})] if not NODE_ID.match(n)]
        if bad:
            raise ma.ValidationError(f"not NodeIds: {', '.join(bad)}", "writable")
