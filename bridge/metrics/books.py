"""The ledger's books as counters that only go up, across sessions.

Every session's ledger starts again at 0 (a new session numbers its streams from
seq 1). Prometheus counters must not go down except at a process restart, so each
heartbeat's books are compared with the same session's previous ones and only the
difference is added. Reading the books the bridge already writes every heartbeat keeps
the hot path untouched, and makes the counters equal to the ledger by construction:
after a session's SESSION_END, a counter is the sum of that field over the sessions'
final books.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.events.envelope import LOSS_STAGES
from bridge.ledger import StreamLedger

log = logging.getLogger(__name__)

# Ledger fields that become counters, by metric name (without prefix and _total).
COUNTED_FIELDS: dict[str, str] = {
    "events_fired": "fired",
    "events_captured": "captured",
    "events_produced": "produced",
    "events_delivered": "acked",
    "dead_letters": "dead_lettered",
    "events_in_doubt": "in_doubt",
}


@dataclass(frozen=True)
class StreamKey:
    """Who a stream's counters belong to."""

    node: str
    source: str
    stream: str


def _values(book: StreamLedger) -> dict[str, int]:
    values = {name: int(getattr(book, field)) for name, field in COUNTED_FIELDS.items()}
    for stage in LOSS_STAGES:
        values[f"lost:{stage}"] = book.lost.get(stage, 0)
    return values


class BookTotals:
    """Monotonic totals per stream, fed with each heartbeat's books."""

    def __init__(self) -> None:
        self.totals: dict[StreamKey, dict[str, int]] = {}
        self.in_flight: dict[StreamKey, int] = {}
        self._session: str | None = None
        self._previous: dict[StreamKey, dict[str, int]] = {}

    def add(self, node: str, source: str, session_id: str, books: Iterable[StreamLedger]) -> None:
        """Add what changed since this session's previous heartbeat."""
        if session_id != self._session:
            self._session = session_id
            self._previous = {}
            for key in self.in_flight:  # the last session's records are settled or lost
                self.in_flight[key] = 0
        for book in books:
            key = StreamKey(node, source, book.stream)
            now = _values(book)
            before = self._previous.get(key, {})
            totals = self.totals.setdefault(key, dict.fromkeys(now, 0))
            for name, value in now.items():
                delta = value - before.get(name, 0)
                if delta < 0:  # a ledger never counts down; say so rather than go negative
                    log.warning("%s of %s went down by %d in one session.", name, key, -delta)
                    continue
                totals[name] += delta
            self._previous[key] = {n: max(v, before.get(n, 0)) for n, v in now.items()}
            self.in_flight[key] = book.in_flight
