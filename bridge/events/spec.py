"""The vocabulary the event catalogue is written in.

Every fact about an event is stated once, in :mod:`bridge.events.catalog`, using the
types below. The BPF struct (``bpf/include``), the ring-record decoder, the native
encoder's field table and the Avro schemas (``avro/``) are all derived from these
objects, so a field cannot be changed in one representation and not the others.

Why a closed vocabulary instead of free-form C types: each probe argument has to be
read in BPF (scalar copy, pointer to 32 bytes, pointer to a C string, pointer to a
payload), stored at a fixed offset, decoded in Python and C, and mapped to exactly one
Avro type. Enumerating the few shapes that Bitcoin Core's tracepoints actually use keeps
each of those steps a small table lookup.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class Stability(enum.StrEnum):
    """How much a consumer may rely on a schema staying compatible.

    The tag travels as an Avro schema property (``tracebridge.stability``) and as the
    ``stability`` Kafka header; the policy each tag implies is written in the README.
    """

    STABLE = "stable"
    EXPERIMENTAL = "experimental"
    PROPOSED = "proposed"
    INTERNAL = "internal"


class Kind(enum.Enum):
    """The shapes a field can have.

    The first eight are what USDT probe arguments look like (each has a storage rule in
    the ring record). The last four occur only in IPC events, which Cap'n Proto types
    already: they have no ring layout.
    """

    I32 = "i32"
    U32 = "u32"
    I64 = "i64"
    U64 = "u64"
    BOOL = "bool"
    HASH32 = "hash32"  # 32 bytes in internal (little-endian) order: probe pointer or IPC Data
    CSTR = "cstr"  # pointer to a NUL-terminated string, stored in a bounded char array
    PAYLOAD = "payload"  # pointer to a byte buffer whose length is another argument
    F64 = "f64"  # IPC Float64
    TEXT = "text"  # IPC Text: unbounded
    DATA = "data"  # IPC Data: unbounded bytes
    LIST = "list"  # IPC List(Struct): an array of nested records


USDT_KINDS = frozenset(
    {Kind.I32, Kind.U32, Kind.I64, Kind.U64, Kind.BOOL, Kind.HASH32, Kind.CSTR, Kind.PAYLOAD}
)


# What an address can be stored as (privacy.peer_addr redacts text, withholds data).
_ADDRESS_KINDS = frozenset({Kind.CSTR, Kind.TEXT, Kind.DATA})

# Size in the ring record and the C type used in the generated struct.
SCALAR_C_TYPES: dict[Kind, tuple[int, str]] = {
    Kind.I32: (4, "__s32"),
    Kind.U32: (4, "__u32"),
    Kind.I64: (8, "__s64"),
    Kind.U64: (8, "__u64"),
    Kind.BOOL: (1, "__u8"),
}


@dataclass(frozen=True)
class EnumSpec:
    """An enum-valued argument: the raw probe value maps to one Avro enum symbol.

    ``values`` maps the raw value (an integer for numeric arguments, the exact string
    for C-string arguments) to its symbol. Values Bitcoin Core adds later map to
    ``UNKNOWN``, which is also the Avro default, so old readers keep working.
    """

    name: str
    doc: str
    values: tuple[tuple[int | str, str], ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        """Avro symbols in a fixed order; UNKNOWN first so it is index 0."""
        return ("UNKNOWN", *(symbol for _, symbol in self.values))

    def index_of(self, raw: int | str) -> int:
        """Symbol index for a raw probe value (0 = UNKNOWN)."""
        for position, (value, _) in enumerate(self.values, start=1):
            if value == raw:
                return position
        return 0


@dataclass(frozen=True)
class FieldSpec:
    """One probe argument (or, for IPC-only events, one callback field).

    ``max_len`` bounds C strings (characters kept, excluding the NUL) and payloads
    (bytes captured; the configured capture limit can only lower it). ``length_of``
    names the argument that carries a payload's full size, so truncation is visible.
    ``bound_provenance`` says where a bound comes from, because a wrong bound silently
    truncates data.
    """

    name: str
    kind: Kind
    doc: str
    unit: str | None = None
    max_len: int | None = None
    bound_provenance: str | None = None
    enum: EnumSpec | None = None
    length_of: str | None = None
    items: RecordSpec | None = None  # LIST: the nested record of each element
    address: bool = False  # a peer's address: redacted under privacy.peer_addr

    def __post_init__(self) -> None:
        if self.kind is Kind.LIST and self.items is None:
            raise ValueError(f"list field {self.name!r} needs items")
        if self.kind is Kind.CSTR and self.max_len is None:
            raise ValueError(f"C string field {self.name!r} needs max_len")
        if self.kind is Kind.PAYLOAD and self.length_of is None:
            raise ValueError(f"payload field {self.name!r} needs length_of")
        if self.address and (self.enum is not None or self.kind not in _ADDRESS_KINDS):
            raise ValueError(f"address field {self.name!r} must be plain text or data")
        if self.enum is not None and self.kind not in (Kind.U32, Kind.I32, Kind.CSTR):
            raise ValueError(f"enum field {self.name!r} must be an integer or a C string")


@dataclass(frozen=True)
class RecordSpec:
    """A nested record (the elements of a LIST field), e.g. one peer of a snapshot."""

    name: str
    doc: str
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class IpcBinding:
    """Where an event comes from over IPC (the capnp schema belongs to Bitcoin Core, so
    this is a mapping onto it, checked by tests/ipc against the loaded schema).

    ``interface.method`` is the callback the node calls, or the method the bridge polls.
    ``fields`` maps catalogue field -> capnp field, dotted for nested structs
    (``block.hash``). Fields the bridge derives itself (a txid computed from the raw
    transaction) are absent from the map and named in ``derived``.
    """

    interface: str
    method: str
    fields: tuple[tuple[str, str], ...] = ()
    derived: tuple[str, ...] = ()
    polled: bool = False

    def fields_in_order(self, fields: Sequence[FieldSpec]) -> list[str]:
        """The capnp field of each of ``fields``, in that order; every one must be bound
        (a record whose values are read straight from one struct, e.g. UtxoInfo)."""
        bound = dict(self.fields)
        missing = [f.name for f in fields if f.name not in bound]
        if missing:
            raise ValueError(f"{self.interface}.{self.method} does not bind {missing}")
        return [bound[f.name] for f in fields]

    def capnp_field(self, name: str) -> str | None:
        for ours, theirs in self.fields:
            if ours == name:
                return theirs
        return None


@dataclass(frozen=True)
class EventSpec:
    """One tracepoint: identity, stability and its arguments in Bitcoin Core's order.

    ``tp_id`` is the number the BPF program writes into every ring record to say which
    tracepoint produced it. It is stated explicitly (not derived from list position) so
    reordering the catalogue cannot silently change the meaning of recorded data.
    The position of a field in ``fields`` *is* its USDT argument number (1-based).
    """

    tp_id: int
    subsystem: str
    event: str
    stability: Stability
    doc: str
    fields: tuple[FieldSpec, ...]
    since: str = "v29.0"
    notes: tuple[str, ...] = field(default=())
    usdt: bool = True  # a USDT tracepoint (has a probe and a ring layout)
    ipc: IpcBinding | None = None
    context: str | None = None  # name prefix when it differs from the subsystem (topic)

    @property
    def name(self) -> str:
        """``context:event`` exactly as Bitcoin Core's ``doc/tracing.md`` writes it (for
        IPC-only events: the interface's context, e.g. ``chain:block_connected``)."""
        return f"{self.context or self.subsystem}:{self.event}"

    @property
    def ident(self) -> str:
        """A C/Python identifier for the event, e.g. ``net_inbound_message``."""
        return f"{self.context or self.subsystem}_{self.event}"

    @property
    def sources(self) -> tuple[str, ...]:
        """Which sources can produce this event's record."""
        return tuple(s for s, on in (("usdt", self.usdt), ("ipc", self.ipc is not None)) if on)

    @property
    def record_name(self) -> str:
        """Avro record name, e.g. ``InboundMessage`` (the namespace carries the subsystem).
        An event whose context is not its topic's subsystem is prefixed with the context
        (``ChainBlockConnected``), since ``validation.BlockConnected`` is the tracepoint's."""
        words = self.event.split("_")
        if self.context and self.context not in (self.subsystem, words[0]):
            words = [self.context, *words]
        return "".join(part.capitalize() for part in words)

    @property
    def payload_field(self) -> FieldSpec | None:
        """The (at most one) variable-length payload field."""
        for spec in self.fields:
            if spec.kind is Kind.PAYLOAD:
                return spec
        return None

    def field_named(self, name: str) -> FieldSpec:
        """Look up a field, failing loudly on a typo in the catalogue."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no field {name!r}")
