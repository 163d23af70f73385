"""Type stub for the C hot path (bridge/codec/_native.c)."""

from collections.abc import Sequence

from typing_extensions import Buffer

FieldRow = tuple[int, int, int, bool, int, tuple[int, ...] | tuple[str, ...] | None, str]
Encoded = tuple[int, bytes, int]  # (tp_id, Avro single-object value, event time in ms)
Rejected = tuple[int, int, bytes, str]  # (tp_id or -1, seq or -1, raw record, reason)

class Encoder:
    def configure_stream(
        self,
        tp_id: int,
        framing: bytes,
        stream: str,
        fixed_size: int,
        fields: Sequence[FieldRow],
    ) -> None: ...
    def set_session(
        self, node_id: str, source_index: int, session_id: str, wall_offset_ns: int
    ) -> None: ...
    def set_wall_offset(self, wall_offset_ns: int, /) -> None: ...
    def add_loss(self, tp_id: int, stage: int, count: int, report_in_next: bool) -> None: ...
    def counters(self, tp_id: int, /) -> tuple[int, int, int, int, int, int, int, int]: ...
    def encode_one(self, raw: Buffer, /) -> tuple[list[Encoded], list[Rejected]]: ...
    def drain(
        self,
        consumer_page: Buffer,
        producer_area: Buffer,
        ring_size: int,
        page_size: int,
        max_records: int,
    ) -> tuple[list[Encoded], list[Rejected], int]: ...
