"""The Sparkplug B payload schema (wire-compatible subset), built at import with the protobuf runtime.

Only the messages the platform reads or writes are declared: Payload, Metric, PropertySet and PropertyValue.
Field numbers follow the Sparkplug B specification; fields not declared here (DataSet, Template, MetaData)
are kept as unknown fields by the parser, so no message fails to decode because of them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "workbench.sparkplug_b"

# Sparkplug B data types (the specification's table).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
INT_TYPES = {INT8, INT16, INT32, UINT8, UINT16, UINT32}
LONG_TYPES = {INT64, UINT64, DATETIME}
NUMERIC_TYPES = INT_TYPES | LONG_TYPES | {FLOAT, DOUBLE, BOOLEAN}

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_SCALARS = {
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}


# A field: (name, number, type, label, oneof index).
Field = tuple[str, int, str, int, int | None]


def _message(name: str, fields: list[Field]) -> descriptor_pb2.DescriptorProto:
    """A message from (name, number, type, label, oneof index) rows; a type not scalar is a message name."""
    proto = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind, label, oneof in fields:
        field = proto.field.add(name=field_name, number=number, label=label)
        if kind in _SCALARS:
            field.type = _SCALARS[kind]
        else:
            field.type = _F.TYPE_MESSAGE
            field.type_name = f".{PACKAGE}.{kind}"
        if oneof is not None:
            field.oneof_index = oneof
    return proto


def _values(first: int) -> list[Field]:
    """The typed value fields (oneof ``value``) PropertyValue and Metric share, numbered from ``first``."""
    kinds = [("int", "uint32"), ("long", "uint64"), ("float", "float"), ("double", "double")]
    kinds += [("boolean", "bool"), ("string", "string")]
    return [(f"{name}_value", first + i, kind, _OPTIONAL, 0) for i, (name, kind) in enumerate(kinds)]


def _file() -> descriptor_pb2.FileDescriptorProto:
    o, r = _OPTIONAL, _REPEATED
    property_value = _message(
        "PropertyValue",
        [
            ("type", 1, "uint32", o, None),
            ("is_null", 2, "bool", o, None),
            *_values(3),
            ("propertyset_value", 9, "PropertySet", o, 0),
        ],
    )
    property_value.oneof_decl.add(name="value")
    property_set = _message(
        "PropertySet", [("keys", 1, "string", r, None), ("values", 2, "PropertyValue", r, None)]
    )
    metric = _message(
        "Metric",
        [
            ("name", 1, "string", o, None),
            ("alias", 2, "uint64", o, None),
            ("timestamp", 3, "uint64", o, None),
            ("datatype", 4, "uint32", o, None),
            ("is_historical", 5, "bool", o, None),
            ("is_transient", 6, "bool", o, None),
            ("is_null", 7, "bool", o, None),
            ("properties", 9, "PropertySet", o, None),
            *_values(10),
            ("bytes_value", 16, "bytes", o, 0),
        ],
    )
    metric.oneof_decl.add(name="value")
    payload = _message(
        "Payload",
        [
            ("timestamp", 1, "uint64", o, None),
            ("metrics", 2, "Metric", r, None),
            ("seq", 3, "uint64", o, None),
            ("uuid", 4, "string", o, None),
            ("body", 5, "bytes", o, None),
        ],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="workbench_sparkplug_b.proto",
        package=PACKAGE,
        syntax="proto2",
        message_type=[property_value, property_set, metric, payload],
    )


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Payload: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
Metric: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.Metric"))


def metric_value(metric: Any) -> Any:
    """The Python value a metric carries (None when null or absent)."""
    if metric.is_null:
        return None
    which = metric.WhichOneof("value")
    if which is None:
        return None
    value = getattr(metric, which)
    datatype = metric.datatype
    # Signed types travel as unsigned two's complement (the specification's encoding).
    if datatype in (INT8, INT16, INT32) and which == "int_value":
        bits = {INT8: 8, INT16: 16, INT32: 32}[datatype]
        value &= (1 << bits) - 1
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    elif datatype == INT64 and which == "long_value" and value >= 1 << 63:
        value -= 1 << 64
    return value


def set_metric_value(metric: Any, datatype: int, value: Any) -> None:
    """Store ``value`` in the field the datatype calls for (signed ints as two's complement)."""
    metric.datatype = datatype
    if value is None:
        metric.is_null = True
    elif datatype in INT_TYPES:
        metric.int_value = int(value) & 0xFFFFFFFF
    elif datatype in LONG_TYPES:
        metric.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype == FLOAT:
        metric.float_value = float(value)
    elif datatype == DOUBLE:
        metric.double_value = float(value)
    elif datatype == BOOLEAN:
        metric.boolean_value = bool(value)
    else:
        metric.string_value = str(value)


def metric_properties(metric: Any) -> dict[str, Any]:
    """A metric's property set as a dict of plain values (``engUnit`` carries the unit by convention)."""
    if not metric.HasField("properties"):
        return {}
    result: dict[str, Any] = {}
    for key, prop in zip(metric.properties.keys, metric.properties.values, strict=False):
        which = prop.WhichOneof("value")
        result[key] = None if prop.is_null or which is None else getattr(prop, which)
    return result


def set_property(metric: Any, key: str, value: str) -> None:
    """Add a string property (``engUnit``, ``engLow``...) to a metric."""
    metric.properties.keys.append(key)
    metric.properties.values.add(type=STRING, string_value=value)
