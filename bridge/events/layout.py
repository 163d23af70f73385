"""Byte layout of the records the BPF program writes into the ring buffers.

The layout is computed here, once, from the catalogue. The generated C header states
it with explicit padding and ``_Static_assert``s on every offset, so the BPF compile
fails if C and Python ever disagree; the Python decoder and the native encoder's field
table read the same :class:`RecordLayout` objects.

A record is a fixed 32-byte header, the event's fixed-size body, and (for P2P messages)
the captured payload bytes, whose count is stored in the body. Fixed-size slots are
ordered by alignment (8-byte scalars, 4-byte scalars, hashes, bytes, strings) so no
field needs implicit padding; the body is padded to a multiple of 8 so the payload
starts aligned.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from bridge.events.spec import SCALAR_C_TYPES, EventSpec, FieldSpec, Kind

HEADER = struct.Struct("<QQQHHI")
"""seq, ktime_ns, lost_before, tp_id, flags, reserved — mirrored by ``struct tb_header``.

``lost_before`` is 64-bit because it is a count of consecutive losses, which a stalled
consumer can push past 2**32 on a busy node.
"""
HEADER_SIZE = HEADER.size  # 32


class RecordFlag(enum.IntFlag):
    """Bits the BPF program sets in ``tb_header.flags``."""

    READ_ERROR = 1 << 0  # a bpf_probe_read_user*() of a pointer argument failed
    PAYLOAD_TRUNCATED = 1 << 1  # fewer payload bytes captured than msg_size


@dataclass(frozen=True)
class Slot:
    """Where one catalogue field lives inside the record body.

    ``size`` is the storage size: the scalar width, 32 for hashes, ``max_len + 1`` for C
    strings (room for the terminating NUL), and 4 for a payload (its captured length;
    the bytes themselves follow the fixed part).
    """

    field: FieldSpec
    offset: int  # from the start of the record (header included)
    size: int

    @property
    def c_decl(self) -> str:
        """The member declaration in the generated C struct."""
        kind = self.field.kind
        if kind in SCALAR_C_TYPES:
            return f"{SCALAR_C_TYPES[kind][1]} {self.field.name};"
        if kind is Kind.HASH32:
            return f"__u8 {self.field.name}[32];"
        if kind is Kind.CSTR:
            return f"char {self.field.name}[{self.size}];"
        return f"__u32 {self.field.name}_len;"


@dataclass(frozen=True)
class Padding:
    """Explicit padding bytes, so C and ``struct`` agree without relying on ABI rules."""

    offset: int
    size: int


@dataclass(frozen=True)
class RecordLayout:
    """The complete layout of one tracepoint's ring record."""

    spec: EventSpec
    members: tuple[Slot | Padding, ...]  # in memory order
    fixed_size: int  # header + body, a multiple of 8; the payload starts here

    @property
    def struct_name(self) -> str:
        return f"tb_rec_{self.spec.ident}"

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(m for m in self.members if isinstance(m, Slot))

    def slot(self, name: str) -> Slot:
        for member in self.slots:
            if member.field.name == name:
                return member
        raise KeyError(f"{self.spec.name} has no slot {name!r}")

    @property
    def payload_slot(self) -> Slot | None:
        for member in self.slots:
            if member.field.kind is Kind.PAYLOAD:
                return member
        return None


def _storage(spec: FieldSpec) -> tuple[int, int]:
    """(size, alignment) of a field's slot."""
    if spec.kind in SCALAR_C_TYPES:
        size = SCALAR_C_TYPES[spec.kind][0]
        return size, size
    if spec.kind is Kind.HASH32:
        return 32, 1
    if spec.kind is Kind.CSTR:
        assert spec.max_len is not None
        return spec.max_len + 1, 1
    return 4, 4  # PAYLOAD: captured length


def _rank(spec: FieldSpec) -> int:
    """Placement order: wide scalars first, strings last (they are the biggest)."""
    _, align = _storage(spec)
    if spec.kind is Kind.CSTR:
        return 4
    if spec.kind is Kind.HASH32:
        return 2
    return {8: 0, 4: 1, 1: 3}[align]


def compute_layout(spec: EventSpec) -> RecordLayout:
    """Lay out ``spec`` after the header; stable for a given catalogue entry."""
    ordered = sorted(spec.fields, key=_rank)  # sorted() is stable: catalogue order within a rank
    members: list[Slot | Padding] = []
    offset = HEADER_SIZE
    for field_spec in ordered:
        size, align = _storage(field_spec)
        gap = -offset % align
        if gap:
            members.append(Padding(offset, gap))
            offset += gap
        members.append(Slot(field_spec, offset, size))
        offset += size
    tail = -offset % 8
    if tail:
        members.append(Padding(offset, tail))
        offset += tail
    return RecordLayout(spec=spec, members=tuple(members), fixed_size=offset)


def struct_format(layout: RecordLayout) -> str:
    """``struct`` format of the fixed part (header included), for the Python decoder."""
    parts = ["<QQQHHI"]
    for member in layout.members:
        if isinstance(member, Padding):
            parts.append(f"{member.size}x")
            continue
        kind = member.field.kind
        if kind is Kind.I32:
            parts.append("i")
        elif kind in (Kind.U32, Kind.PAYLOAD):
            parts.append("I")
        elif kind is Kind.I64:
            parts.append("q")
        elif kind is Kind.U64:
            parts.append("Q")
        elif kind is Kind.BOOL:
            parts.append("B")
        else:
            parts.append(f"{member.size}s")
    return "".join(parts)
