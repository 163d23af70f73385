"""Build ring records the way the BPF program lays them out (tests only).

The inverse of bridge.events.decoder, written against bridge.events.layout, so unit
tests can feed the native encoder exact bytes without a kernel.
"""

from __future__ import annotations

import struct
from typing import Any

from bridge.events.layout import RecordFlag, compute_layout, struct_format
from bridge.events.spec import EventSpec, Kind


def build_record(
    spec: EventSpec,
    values: dict[str, Any],
    *,
    seq: int = 1,
    ktime_ns: int = 1_000_000_000,
    lost_before: int = 0,
    flags: int = 0,
) -> bytes:
    """Raw bytes of one ring record with ``values`` (payload bytes included)."""
    layout = compute_layout(spec)
    items: list[Any] = []
    payload = b""
    for slot in layout.slots:
        value = values[slot.field.name]
        kind = slot.field.kind
        if kind is Kind.CSTR:
            raw = value.encode() if isinstance(value, str) else value
            items.append(raw[: slot.size - 1].ljust(slot.size, b"\0"))
        elif kind is Kind.PAYLOAD:
            payload = value
            items.append(len(payload))
        elif kind is Kind.BOOL:
            items.append(int(value))
        else:
            items.append(value)
    if spec.payload_field is not None:
        length = values[spec.payload_field.length_of or ""]
        if length > len(payload):
            flags |= RecordFlag.PAYLOAD_TRUNCATED
    header = (seq, ktime_ns, lost_before, spec.tp_id, flags, 0)
    fixed = struct.pack(struct_format(layout), *header, *items)
    assert len(fixed) == layout.fixed_size
    return fixed + payload
