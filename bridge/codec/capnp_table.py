"""Where each record field sits in a Cap'n Proto struct, read from the loaded schema.

The native encoder reads Cap'n Proto lists without pycapnp (bridge/codec/capnp.c); it
needs, per catalogue field, the capnp slot's kind and offset. Those come from pycapnp's
schema introspection of whatever schema file was loaded, never from hand-written
numbers, so a schema change moves the offsets with it, and a field whose capnp type
does not fit the catalogue's kind is refused here, at startup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.events.spec import EventSpec, Kind

# capnp.c's `enum capkind`.
C_NONE, C_BOOL, C_I32, C_U32, C_I64, C_U64, C_TEXT, C_DATA = range(8)

# Which capnp slot types can feed which catalogue kinds (and how C reads them).
_COMPATIBLE: dict[str, tuple[int, frozenset[Kind]]] = {
    "bool": (C_BOOL, frozenset({Kind.BOOL})),
    "int32": (C_I32, frozenset({Kind.I32, Kind.I64})),
    "uint32": (C_U32, frozenset({Kind.U32, Kind.I64, Kind.U64})),
    "int64": (C_I64, frozenset({Kind.I64})),
    "uint64": (C_U64, frozenset({Kind.U64})),
    "text": (C_TEXT, frozenset({Kind.CSTR, Kind.TEXT})),
    "data": (C_DATA, frozenset({Kind.HASH32, Kind.PAYLOAD, Kind.DATA})),
}


class CapnpMappingError(ValueError):
    """A catalogue IPC binding does not fit the loaded Cap'n Proto schema."""


@dataclass(frozen=True)
class ListTable:
    """Arguments of ``Encoder.configure_capnp_list`` for one struct type."""

    sources: tuple[tuple[int, int], ...]
    selector_bit: int
    timestamp_word: int


def slot(struct_schema: Any, name: str) -> tuple[str, int]:
    """(capnp type name, slot offset) of a struct field."""
    for field in struct_schema.node.struct.fields:
        if field.name == name:
            if field.which() != "slot":
                raise CapnpMappingError(f"{name} is a group or union, not a plain field")
            return str(field.slot.type.which()), int(field.slot.offset)
    raise CapnpMappingError(f"the Cap'n Proto struct has no field {name!r}")


def list_table(
    spec: EventSpec, struct_schema: Any, selector: str | None, timestamp: str | None
) -> ListTable:
    """Sources for ``spec``'s fields from ``struct_schema`` (via ``spec.ipc``)."""
    if spec.ipc is None:
        raise CapnpMappingError(f"{spec.name} has no IPC binding")
    sources: list[tuple[int, int]] = []
    for field_spec in spec.fields:
        theirs = spec.ipc.capnp_field(field_spec.name)
        if theirs is None:
            raise CapnpMappingError(f"{spec.name}.{field_spec.name} has no capnp field")
        capnp_type, offset = slot(struct_schema, theirs)
        if capnp_type not in _COMPATIBLE or field_spec.kind not in _COMPATIBLE[capnp_type][1]:
            raise CapnpMappingError(
                f"{spec.name}.{field_spec.name} is {field_spec.kind.value}, but capnp "
                f"{theirs} is {capnp_type}"
            )
        sources.append((_COMPATIBLE[capnp_type][0], offset))
    selector_bit = -1
    if selector is not None:
        capnp_type, selector_bit = slot(struct_schema, selector)
        if capnp_type != "bool":
            raise CapnpMappingError(f"selector {selector} must be a Bool")
    timestamp_word = -1
    if timestamp is not None:
        capnp_type, timestamp_word = slot(struct_schema, timestamp)
        if capnp_type != "int64":
            raise CapnpMappingError(f"timestamp {timestamp} must be an Int64")
    return ListTable(tuple(sources), selector_bit, timestamp_word)
