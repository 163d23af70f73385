"""Typed setup of the native encoder from the catalogue.

The C encoder is generic: it learns each stream's record layout and Avro field order
from the rows built here, which come from :mod:`bridge.events.layout` and the
catalogue. Adding a tracepoint therefore needs no C change.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.codec import _native
from bridge.codec.single_object import SchemaStore
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.layout import RecordLayout, compute_layout
from bridge.events.spec import EventSpec, Kind
from bridge.privacy.apply import MESSAGE_TYPE_FIELD

# Must match `enum kind` in _native.c; tests/unit/codec checks every kind end to end.
NATIVE_KIND: dict[Kind, int] = {
    Kind.I32: 0,
    Kind.U32: 1,
    Kind.I64: 2,
    Kind.U64: 3,
    Kind.BOOL: 4,
    Kind.HASH32: 5,
    Kind.CSTR: 6,
    Kind.PAYLOAD: 7,
}

Encoder = _native.Encoder


def field_rows(layout: RecordLayout) -> list[_native.FieldRow]:
    """One row per catalogue field, in Avro (= catalogue) order. The last two say
    which fields privacy.peer_addr concerns: an address, and a payload's message type
    (whose payload is withheld for types that carry addresses)."""
    names = [f.name for f in layout.spec.fields]
    rows: list[_native.FieldRow] = []
    for field_spec in layout.spec.fields:
        slot = layout.slot(field_spec.name)
        length_index = 0
        if field_spec.kind is Kind.PAYLOAD:
            assert field_spec.length_of is not None
            length_index = names.index(field_spec.length_of)
        enum_values: tuple[int, ...] | tuple[str, ...] | None = None
        if field_spec.enum is not None:
            raw = [value for value, _ in field_spec.enum.values]
            if field_spec.kind is Kind.CSTR:
                enum_values = tuple(str(v) for v in raw)
            else:
                enum_values = tuple(int(v) for v in raw)
        type_index = -1
        if field_spec.kind is Kind.PAYLOAD and MESSAGE_TYPE_FIELD in names:
            type_index = names.index(MESSAGE_TYPE_FIELD)
        rows.append(
            (
                NATIVE_KIND[field_spec.kind],
                slot.offset,
                slot.size,
                field_spec.kind is Kind.HASH32,
                length_index,
                enum_values,
                field_spec.name,
                field_spec.address,
                type_index,
            )
        )
    return rows


def configure(encoder: _native.Encoder, specs: Iterable[EventSpec], store: SchemaStore) -> None:
    """Teach ``encoder`` every stream in ``specs``, framed as single-object encoding of
    the committed schema (a registry mode only changes the framing bytes)."""
    for spec in specs:
        known = store.by_name(full_name(event_schema(spec)))
        layout = compute_layout(spec)
        encoder.configure_sequence(spec.tp_id, spec.name)
        encoder.configure_stream(
            spec.tp_id, known.header, spec.tp_id, layout.fixed_size, field_rows(layout)
        )
