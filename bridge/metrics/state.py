"""What the bridge tells its metrics, and what a scrape reads.

The bridge thread writes: each session's start and end, each heartbeat's books. The
scrape (the HTTP server's thread) reads those under a lock, and samples what is cheap
to read at that moment and pointless to push: the rings' fill and the producer queue's
depth. Nothing here runs per event; the one per-record observation, delivery latency,
lives in :mod:`bridge.metrics.latency` and is made by the Kafka sink.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bridge.events.envelope import SourceKind
from bridge.ledger import StreamLedger
from bridge.metrics.books import BookTotals
from bridge.metrics.latency import LatencyBuckets

# Upper bounds of the attach delay histogram, seconds: from a reused program on a
# restarted node (~0.1 s) to a compile on a busy machine and a slow pidfile.
ATTACH_BOUNDS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@runtime_checkable
class HasRings(Protocol):
    """A session whose source buffers in rings (USDT): (name, pending bytes, size)."""

    def ring_fill(self) -> list[tuple[str, int, int]]: ...


@dataclass
class SessionView:
    """The session being run, as a scrape samples it."""

    node: str
    source: str
    rings: Callable[[], list[tuple[str, int, int]]] | None


@dataclass
class AttachDelays:
    """Sessions' attach delays as histogram buckets (the last one is +Inf), in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(ATTACH_BOUNDS_S) + 1))
    sum_s: float = 0.0
    last_s: float | None = None

    def observe(self, seconds: float) -> None:
        index = next((i for i, b in enumerate(ATTACH_BOUNDS_S) if seconds <= b), -1)
        self.counts[index] += 1
        self.sum_s += seconds
        self.last_s = seconds


class BridgeMetrics:
    """Everything the endpoint serves for one bridge process (one node)."""

    def __init__(
        self,
        node: str,
        queue_depth: Callable[[], int],
        source: str = "usdt",
        bridge_records: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.node = node
        # The bridge's own records (heartbeats, dead letters): (failed, skipped).
        self.bridge_records = bridge_records
        self.latency = LatencyBuckets()
        self.books = BookTotals()
        # Per source: sessions started, and whether one is running. The configured source
        # is there from the start, so a bridge still waiting for its node shows as detached.
        self.sessions: dict[str, int] = {source: 0}
        self.attached: dict[str, bool] = {source: False}
        self.ipc_reconnects = 0
        self.attach_delays: dict[str, AttachDelays] = {}  # source -> histogram
        self._queue_depth = queue_depth
        self._current: SessionView | None = None
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- bridge thread
    def session_started(
        self, kind: SourceKind, session: object, attach_delay_ns: int | None
    ) -> None:
        """A session is attached: count it (an IPC session after the first is a
        reconnect) and let scrapes sample its rings."""
        source = kind.name.lower()
        rings = session.ring_fill if isinstance(session, HasRings) else None
        with self.lock:
            started = self.sessions.get(source, 0)
            if kind is SourceKind.IPC and started:
                self.ipc_reconnects += 1
            self.sessions[source] = started + 1
            if attach_delay_ns is not None:
                self.attach_delays.setdefault(source, AttachDelays()).observe(attach_delay_ns / 1e9)
            self.attached[source] = True
            self._current = SessionView(self.node, source, rings)

    def session_ended(self) -> None:
        """The session's books are closed (or it failed): nothing more to sample."""
        with self.lock:
            if self._current is not None:
                self.attached[self._current.source] = False
            self._current = None

    def observe_books(self, source: SourceKind, session_id: str, books: list[StreamLedger]) -> None:
        """One heartbeat's books (called right after the heartbeat is produced)."""
        with self.lock:
            self.books.add(self.node, source.name.lower(), session_id, books)

    # ---------------------------------------------------------------- scrape thread
    def sample_rings(self) -> list[tuple[str, str, int, int]]:
        """(source, ring, pending bytes, size) of the running session's rings, now."""
        with self.lock:
            current = self._current
        if current is None or current.rings is None:
            return []
        try:
            fill = current.rings()
        except Exception:  # the session closed between the lock and the read
            return []
        return [(current.source, name, pending, size) for name, pending, size in fill]

    def sample_queue_depth(self) -> int | None:
        """Records in the producer (queued or awaiting acknowledgement), now."""
        try:
            return self._queue_depth()
        except Exception:  # the producer is closed: the process is stopping
            return None
