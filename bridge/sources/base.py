"""What the pipeline needs from a source (USDT today, IPC next).

A source hands out *sessions*: one per attachment to one node process (or one IPC
connection). Everything in a session shares a ``session_id`` and numbers its streams
from seq 1, so a consumer can tell a restart from a gap.
"""

from __future__ import annotations

import threading
from typing import Protocol

from bridge.codec import _native
from bridge.events.envelope import SourceKind
from bridge.events.spec import EventSpec
from bridge.ledger import SourceCounts


class SourceSession(Protocol):
    """One attachment; the pipeline drives it until it ends."""

    kind: SourceKind
    session_id: str
    specs: tuple[EventSpec, ...]
    node_pid: int | None
    node_endpoint: str | None

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
        """Per tp_id: fired, and losses before the bridge (kernel / node)."""

    def close(self) -> None:
        """Release everything."""


class Source(Protocol):
    """Finds the node and opens sessions."""

    def next_session(self, stop: threading.Event) -> SourceSession | None:
        """Block until a session is open (None if ``stop`` was set first)."""
