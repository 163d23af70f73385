"""Reference decoder: one ring record → a typed Python value, and → an Avro record dict.

This is the readable statement of what a ring record means. The hot path does the same
work in C (:mod:`bridge.codec.native`), a batch at a time; unit tests feed both the same
records (including malformed ones) and require byte-identical Avro output or the same
rejection, so the two cannot drift. Tools that handle single records (the dead-letter
inspector, tests, debugging) use this module directly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from bridge.events.avro_values import to_avro
from bridge.events.catalog import BY_TP_ID
from bridge.events.layout import HEADER, HEADER_SIZE, RecordFlag, RecordLayout, compute_layout
from bridge.events.spec import EventSpec, FieldSpec, Kind


class RecordDecodeError(ValueError):
    """A ring record that cannot be turned into an event; the message is the reason.

    ``tp_id`` and ``seq`` are set when the header could be read, so the dead letter can
    name the stream.
    """

    def __init__(self, reason: str, tp_id: int | None = None, seq: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tp_id = tp_id
        self.seq = seq


@dataclass(frozen=True)
class RecordHeader:
    seq: int
    ktime_ns: int
    lost_before: int
    tp_id: int
    flags: int


@dataclass(frozen=True)
class DecodedRecord:
    """A ring record with its fields as Python values (strings decoded, payload cut)."""

    header: RecordHeader
    spec: EventSpec
    values: dict[str, Any]  # catalogue field name -> int | bool | bytes | str


@cache
def _layout(tp_id: int) -> tuple[RecordLayout, struct.Struct]:
    from bridge.events.layout import struct_format

    layout = compute_layout(BY_TP_ID[tp_id])
    return layout, struct.Struct(struct_format(layout))


def trim_partial_utf8(data: bytes) -> bytes:
    """Drop an incomplete multi-byte character at the end (a string cut at its bound)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # continuation byte: keep looking for the lead byte
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if need > back:
                return data[:-back]
        return data
    return data


def _cstr(raw: bytes, spec: FieldSpec, tp_id: int, seq: int) -> str:
    end = raw.find(b"\0")
    if end < 0:
        raise RecordDecodeError(f"field {spec.name}: string is not NUL-terminated", tp_id, seq)
    text = raw[:end]
    if end == len(raw) - 1:  # filled to the bound: the last character may have been cut
        text = trim_partial_utf8(text)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordDecodeError(f"field {spec.name}: not valid UTF-8", tp_id, seq) from None


def decode_record(raw: bytes) -> DecodedRecord:
    """Decode one ring record (header included); raise RecordDecodeError if malformed."""
    if len(raw) < HEADER_SIZE:
        raise RecordDecodeError(f"record of {len(raw)} bytes is shorter than the header")
    seq, ktime_ns, lost_before, tp_id, flags, _ = HEADER.unpack_from(raw)
    header = RecordHeader(seq, ktime_ns, lost_before, tp_id, flags)
    if tp_id not in BY_TP_ID or not BY_TP_ID[tp_id].usdt:
        # IPC-only events share the id space but never travel through a ring.
        raise RecordDecodeError(f"unknown tracepoint id {tp_id}", None, seq)
    layout, fixed = _layout(tp_id)
    spec = layout.spec
    if len(raw) < layout.fixed_size:
        raise RecordDecodeError(
            f"record of {len(raw)} bytes is shorter than {spec.name}'s {layout.fixed_size}",
            tp_id,
            seq,
        )
    if flags & RecordFlag.READ_ERROR:
        raise RecordDecodeError("a pointer argument could not be read at the probe", tp_id, seq)
    unpacked = fixed.unpack_from(raw)[6:]  # skip the header's 6 items
    by_name = {slot.field.name: value for slot, value in zip(layout.slots, unpacked, strict=True)}
    values: dict[str, Any] = {}
    for field_spec in spec.fields:  # catalogue order, as the native encoder checks them
        value = by_name[field_spec.name]
        if field_spec.kind is Kind.BOOL:
            values[field_spec.name] = value != 0
        elif field_spec.kind is Kind.CSTR:
            values[field_spec.name] = _cstr(value, field_spec, tp_id, seq)
        elif field_spec.kind is Kind.PAYLOAD:
            captured = len(raw) - layout.fixed_size
            if value != captured:
                raise RecordDecodeError(
                    f"field {field_spec.name}: {value} bytes captured but {captured} present",
                    tp_id,
                    seq,
                )
            values[field_spec.name] = raw[layout.fixed_size :]
        else:
            values[field_spec.name] = value
    if layout.payload_slot is None and len(raw) != layout.fixed_size:
        raise RecordDecodeError(
            f"record of {len(raw)} bytes, {spec.name} records are {layout.fixed_size}",
            tp_id,
            seq,
        )
    return DecodedRecord(header, spec, values)


def event_fields(record: DecodedRecord) -> dict[str, Any]:
    """The event part of the Avro record (everything but the envelope), by the mapping
    rules in :mod:`bridge.events.avro_schema`."""
    return to_avro(record.spec.fields, record.values)
