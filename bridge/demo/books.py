"""The bridge's ledger as the demo shows it: the latest books, summed per subsystem.

The bridge calls :meth:`LedgerBoard.record` on its hot thread at every heartbeat. It
only stores a reference under a lock, so the view can do its sums on its own thread and
at its own pace; a slow or broken view can never delay a drain. Rates come from the
difference between two heartbeats, the only moments the books are known exactly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.events.catalog import BY_NAME, TOPIC_SUBSYSTEMS
from bridge.events.envelope import LOSS_STAGES
from bridge.ledger import StreamLedger

log = logging.getLogger(__name__)

# Streams that are not one catalogue event: over IPC both NetMessage directions form one
# stream (bridge.sources.ipc.session.NET_STREAM), written to the net topic.
STREAM_SUBSYSTEMS = {"net:messages": "net"}


def subsystem_of(stream: str) -> str:
    """The topic a stream's records go to: 'net' for 'net:inbound_message', 'validation'
    for the IPC-only 'chain:block_connected', 'node' for 'chain:fee_estimates'. The
    catalogue decides (a stream's name prefix is not its topic over IPC); the name is
    only the last resort."""
    spec = BY_NAME.get(stream)
    if spec is not None:
        return spec.subsystem
    return STREAM_SUBSYSTEMS.get(stream, stream.partition(":")[0])


@dataclass(frozen=True)
class GroupBooks:
    """Books of several streams added up (one subsystem, or all of them)."""

    name: str
    fired: int
    delivered: int
    in_flight: int
    lost: dict[str, int]
    delivered_per_s: float | None

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())


def add_up(
    name: str, books: Sequence[StreamLedger], earlier: Sequence[StreamLedger], seconds: float
) -> GroupBooks:
    """Sum ``books``; the delivery rate compares them with the same streams ``seconds`` ago."""
    lost = dict.fromkeys(LOSS_STAGES, 0)
    for book in books:
        for stage, value in book.lost.items():
            lost[stage] = lost.get(stage, 0) + value
    delivered = sum(b.acked for b in books)
    rate = None
    if earlier and seconds > 0:
        rate = max(0.0, (delivered - sum(b.acked for b in earlier)) / seconds)
    return GroupBooks(
        name=name,
        fired=sum(b.fired for b in books),
        delivered=delivered,
        in_flight=sum(b.in_flight for b in books),
        lost=lost,
        delivered_per_s=rate,
    )


@dataclass(frozen=True)
class BooksSnapshot:
    """What the view shows of the ledger: per subsystem, the total, and how fresh it is."""

    heartbeats: int
    age_s: float
    subsystems: tuple[GroupBooks, ...]
    total: GroupBooks


class LedgerBoard:
    """Keeps the last two sets of books the bridge reported (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: tuple[float, tuple[StreamLedger, ...]] | None = None
        self._previous: tuple[float, tuple[StreamLedger, ...]] | None = None
        self._heartbeats = 0

    def record(self, books: list[StreamLedger]) -> None:
        """The bridge's ``on_books`` callback: must be cheap and must never raise, since
        an exception here would end the bridge's session."""
        try:
            entry = (time.monotonic(), tuple(books))
            with self._lock:
                self._previous, self._latest = self._latest, entry
                self._heartbeats += 1
        except Exception:  # never into the bridge's thread
            log.exception("The demo could not record the bridge's books.")

    def latest_books(self) -> tuple[StreamLedger, ...] | None:
        """The most recent books as reported (after the session ended: its final books)."""
        with self._lock:
            return self._latest[1] if self._latest is not None else None

    def snapshot(self) -> BooksSnapshot | None:
        """Books per subsystem (in catalogue order) and in total; None before a heartbeat."""
        with self._lock:
            latest, previous, heartbeats = self._latest, self._previous, self._heartbeats
        if latest is None:
            return None
        taken_at, books = latest
        earlier: tuple[StreamLedger, ...] = ()
        seconds = 0.0
        if previous is not None:
            seconds = taken_at - previous[0]
            earlier = previous[1]
        groups = []
        for subsystem in _subsystems(books):
            mine = [b for b in books if subsystem_of(b.stream) == subsystem]
            before = [b for b in earlier if subsystem_of(b.stream) == subsystem]
            groups.append(add_up(subsystem, mine, before, seconds))
        return BooksSnapshot(
            heartbeats=heartbeats,
            age_s=time.monotonic() - taken_at,
            subsystems=tuple(groups),
            total=add_up("total", books, earlier, seconds),
        )


def _subsystems(books: Sequence[StreamLedger]) -> list[str]:
    """The subsystems present, in the topics' order (IPC adds 'node' to the five of USDT)."""
    present = {subsystem_of(b.stream) for b in books}
    return [s for s in TOPIC_SUBSYSTEMS if s in present] + sorted(present - set(TOPIC_SUBSYSTEMS))
