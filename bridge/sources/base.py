"""What the pipeline needs from a source (USDT or IPC).

A source hands out *sessions*: one per attachment to one node process (or one IPC
connection). Everything in a session shares a ``session_id`` and numbers its streams
from seq 1, so a consumer can tell a restart from a gap.

A *stream* is what one seq counts. For USDT it is one tracepoint and one Avro record
type; over IPC the two NetMessage directions form one stream ("net:messages") of two
record types, because the node's drop count is not split by direction.
"""

from __future__ import annotations

import threading
from typing import Protocol

from bridge.codec import _native
from bridge.codec.single_object import SchemaStore
from bridge.events.envelope import SourceKind
from bridge.events.spec import EventSpec
from bridge.ledger import SourceCounts, Stream


class SourceSession(Protocol):
    """One attachment; the pipeline drives it until it ends."""

    kind: SourceKind
    session_id: str
    streams: tuple[Stream, ...]
    record_types: tuple[EventSpec, ...]  # every record type the streams produce
    node_pid: int | None
    node_endpoint: str | None
    source_thread_cpu_s: float  # CPU of a thread of the source's own (IPC: its event loop)
    # From the node process's start to capture being live: what the node fired in that
    # window was never seen, so the ledger states it (None where it cannot be known).
    attach_delay_ns: int | None

    def configure(self, encoder: _native.Encoder, store: SchemaStore) -> None:
        """Teach the encoder this session's sequences and record types."""

    def alive(self) -> bool:
        """False once the node is gone (the pipeline then closes the books)."""

    def wait(self, timeout_s: float) -> None:
        """Block until data may be ready or ``timeout_s`` passes."""

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected]]:
        """Encode what has arrived: (records, rejected records)."""

    def stop(self) -> None:
        """Stop capturing; later drain() calls return what was already captured."""

    def source_counts(self) -> dict[int, SourceCounts]:
        """Per stream (sequence id): fired, and losses before the bridge. Streams the
        source cannot count itself are left out (see SessionLedger)."""

    def close(self) -> None:
        """Release everything. Called once the final drain is done (and again, which
        must be harmless, when the session ends on an error); the counts of
        ``source_counts`` stay readable."""


class Source(Protocol):
    """Finds the node and opens sessions."""

    reattach: bool  # open another session after one ends
    poll_interval_s: float  # how long a session's wait() may block
    max_batch: int  # most records one drain() returns per ring / queue

    def next_session(self, stop: threading.Event) -> SourceSession | None:
        """Block until a session is open (None if ``stop`` was set first)."""

    def close(self) -> None:
        """Release what the source keeps between sessions (USDT: the compiled program)."""
