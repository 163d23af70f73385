"""Type stub for the C hot path (bridge/codec/_native.c)."""

from collections.abc import Sequence

from typing_extensions import Buffer

FieldRow = tuple[int, int, int, bool, int, tuple[int, ...] | tuple[str, ...] | None, str, bool, int]
# (kind, ring offset, ring size, display hex, index of the length field, enum values, name,
#  a peer address, index of a payload's message type field or -1); the last two optional
Encoded = tuple[int, bytes, int]  # (tp_id, Avro single-object value, event time in ms)
Rejected = tuple[int, int, bytes, str]  # (tp_id or -1, seq or -1, raw record, reason)

class Encoder:
    def configure_sequence(self, sequence: int, name: str) -> None: ...
    def configure_stream(
        self,
        tp_id: int,
        framing: bytes,
        sequence: int,
        fixed_size: int,
        fields: Sequence[FieldRow],
    ) -> None: ...
    def set_session(
        self, node_id: str, source_index: int, session_id: str, wall_offset_ns: int
    ) -> None: ...
    def set_wall_offset(self, wall_offset_ns: int, /) -> None: ...
    def add_loss(self, sequence: int, stage: int, count: int, report_in_next: bool) -> None: ...
    def unsent(self, records: Sequence[Encoded], /) -> None: ...
    def counters(self, sequence: int, /) -> tuple[int, int, int, int, int, int, int, int]: ...
    def encode_one(self, raw: Buffer, /) -> tuple[list[Encoded], list[Rejected]]: ...
    def drain(
        self,
        consumer_page: Buffer,
        producer_area: Buffer,
        ring_size: int,
        page_size: int,
        max_records: int,
    ) -> tuple[list[Encoded], list[Rejected], int]: ...
    def encode_values(
        self, tp_id: int, mono_ns: int, node_lost: int, values: Sequence[object]
    ) -> tuple[list[Encoded], list[Rejected]]: ...
    def encode_body(self, tp_id: int, mono_ns: int, node_lost: int, body: bytes) -> Encoded: ...
    def reject_next(self, tp_id: int, node_lost: int) -> int: ...
    def set_redaction(
        self,
        mode: int,
        key: bytes,
        keep_port: bool,
        ipv4_bits: int,
        ipv6_bits: int,
        withheld_types: Sequence[str],
    ) -> None: ...
    def redact_address(self, address: str, /) -> str: ...
    def redaction_mode(self) -> int: ...
    def configure_capnp_list(
        self,
        list_id: int,
        root_pointer: int,
        selector_bit: int,
        tp_true: int,
        tp_false: int,
        ts_word: int,
        ts_scale_ns: int,
        sources: Sequence[tuple[int, int]],
    ) -> None: ...
    def encode_capnp_list(
        self, list_id: int, message: bytes, dropped: int, receipt_mono_ns: int, expected: int
    ) -> tuple[list[Encoded], list[Rejected]]: ...
