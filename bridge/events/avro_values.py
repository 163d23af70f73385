"""Catalogue field values → the Avro record's values, by the mapping rules of
:mod:`bridge.events.avro_schema` (hash + display hex, enum + raw, payload + truncated
flag, nested lists).

One place for the rules: the reference decoder (ring records) and the IPC source (events
whose body Python encodes) both build records with it, and the native encoder is tested
byte for byte against its output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.events.spec import FieldSpec, Kind


def as_long(value: int) -> int:
    """An unsigned 64-bit value as the Avro long with the same bits."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def to_avro(
    fields: Sequence[FieldSpec], values: Mapping[str, Any], path: str = ""
) -> dict[str, Any]:
    """The Avro values of ``fields`` (in order), from their catalogue values.

    A hash of the wrong size raises ValueError naming the field (``path`` locates a
    nested list's items), in the words the native encoder uses, so a dead letter says
    which field was wrong whichever encoder rejected it."""
    out: dict[str, Any] = {}
    for spec in fields:
        value = values[spec.name]
        name = spec.name
        if spec.kind is Kind.HASH32:
            digest = bytes(value)
            if len(digest) != 32:
                raise ValueError(f"field {path}{name}: {len(digest)} bytes, a hash has 32")
            out[name] = digest
            out[f"{name}_hex"] = digest[::-1].hex()
        elif spec.kind is Kind.PAYLOAD:
            assert spec.length_of is not None
            out[name] = bytes(value)
            out[f"{name}_truncated"] = values[spec.length_of] > len(value)
        elif spec.enum is not None:
            index = spec.enum.index_of(value)
            out[name] = spec.enum.symbols[index]
            out[f"{name}_raw"] = None if index else value
        elif spec.kind is Kind.U64:
            out[name] = as_long(value)
        elif spec.kind is Kind.LIST:
            assert spec.items is not None
            out[name] = [
                to_avro(spec.items.fields, item, f"{path}{name}[{index}].")
                for index, item in enumerate(value)
            ]
        elif spec.kind in (Kind.DATA, Kind.PAYLOAD):
            out[name] = bytes(value)
        elif spec.kind is Kind.F64:
            out[name] = float(value)
        else:
            out[name] = value
    return out
