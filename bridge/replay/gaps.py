"""Seq gaps of one stream, and what accounts for each: the rules replay and audit share.

The facts (README, "Envelope and loss semantics"): seq is contiguous from 1 per
(node, session, stream) at the probe. A record's ``lost_before`` counts the losses of
its stream reported when it was encoded: kernel (ring full), bridge (dead letter,
backpressure) and node losses. Producer losses are never in a ``lost_before`` (the
record was lost after it was encoded); they are in the ledger's ``lost.producer``.
Losses after the last record are in the ledger only. When two CPUs fire one tracepoint
at once, a kernel loss may be reported by a neighbouring record, earlier or later than
the gap; totals stay exact.

So, walking a stream's distinct seqs in order, every gap (missing seqs between two
records, or before the first) is covered, in this order of preference, by:

1. ``lost_before``: the lost_before of the record right after it;
2. ``neighbour``: lost_before counts of records at most ``tolerance`` records away
   (reported after the gap, or reported early and not used by a gap of their own);
3. ``producer``: the ledger's producer-stage losses, which no lost_before carries;
4. ``ledger`` (the tail only, after the last record): the ledger's non-producer losses
   that no lost_before reported (sum of lost_before below the ledger's total).

Whatever is left is ``unexplained``. Coverage is cumulative and greedy (oldest gap
first), so a loss reported one record off is accepted while a gap whose report never
comes within ``tolerance`` records is not. ``lost_before`` counts that no gap uses
within the tolerance are ``overreported`` (a warning: nothing is missing for them).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.replay.events import StreamKey

DEFAULT_TOLERANCE = 32
NON_PRODUCER_STAGES = ("kernel", "bridge", "node")


@dataclass
class Gap:
    """Missing seqs first..last (inclusive), and how many of them each rule covered."""

    first: int
    last: int
    lost_before: int = 0
    neighbour: int = 0
    producer: int = 0
    ledger: int = 0
    unexplained: int = 0

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @property
    def covered_by(self) -> str:
        """The weakest rule it needed: unexplained > producer > ledger > neighbour."""
        for name in ("unexplained", "producer", "ledger", "neighbour"):
            if getattr(self, name):
                return name
        return "lost_before"

    def as_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "size": self.size,
            "covered_by": self.covered_by,
            "lost_before": self.lost_before,
            "neighbour": self.neighbour,
            "producer": self.producer,
            "ledger": self.ledger,
            "unexplained": self.unexplained,
        }


@dataclass(frozen=True)
class Ledger:
    """One stream's entry in a heartbeat; ``final`` for the SESSION_END one."""

    fired: int
    acked: int
    lost: dict[str, int]
    final: bool

    @classmethod
    def from_book(cls, book: dict[str, Any], final: bool) -> Ledger:
        return cls(int(book["fired"]), int(book["acked"]), dict(book["lost"]), final)

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())


@dataclass
class StreamTrace:
    """What the records of one stream said, in arrival order (two ints per record)."""

    seqs: array[int] = field(default_factory=lambda: array("q"))
    lost_befores: array[int] = field(default_factory=lambda: array("q"))
    max_seq: int = 0
    last_lost: dict[str, int] | None = None  # running totals on the highest seq seen

    def add(self, seq: int, lost_before: int, lost: dict[str, int] | None = None) -> None:
        self.seqs.append(seq)
        self.lost_befores.append(lost_before)
        if seq > self.max_seq:
            self.max_seq = seq
            self.last_lost = lost


@dataclass
class StreamGaps:
    """The gaps of one stream and the totals they were judged from."""

    key: StreamKey
    records: int  # every record, duplicates included
    delivered: int  # distinct seqs
    duplicates: int
    duplicate_seqs: list[int]
    first_seq: int | None
    last_seq: int | None
    lost_before_total: int
    gaps: list[Gap]
    overreported: int
    beyond_ledger: int  # records with a seq above the final ledger's fired
    ledger: Ledger | None

    @property
    def missing(self) -> int:
        return sum(g.size for g in self.gaps)

    @property
    def unexplained(self) -> int:
        return sum(g.unexplained for g in self.gaps)


def _sorted_unique(
    seqs: Sequence[int], lost_befores: Sequence[int]
) -> tuple[list[tuple[int, int]], list[int]]:
    """(seq, lost_before) by seq, first occurrence kept; and the duplicated seqs."""
    n = len(seqs)
    in_order = all(seqs[i] < seqs[i + 1] for i in range(n - 1))
    if in_order:
        return list(zip(seqs, lost_befores, strict=True)), []
    pairs = sorted(zip(seqs, lost_befores, range(n), strict=True))
    unique: list[tuple[int, int]] = []
    duplicated: list[int] = []
    for seq, lost_before, _ in pairs:
        if unique and unique[-1][0] == seq:
            duplicated.append(seq)
            continue
        unique.append((seq, lost_before))
    return unique, duplicated


@dataclass
class _Open:
    """A gap not fully covered yet."""

    gap: Gap
    position: int  # index of the record right after it
    remaining: int


class _Walk:
    """The greedy, cumulative coverage walk of the module docstring."""

    def __init__(self, producer_budget: int, tolerance: int) -> None:
        self.producer_budget = producer_budget
        self.tolerance = tolerance
        self.pending: deque[_Open] = deque()
        self.credit = 0  # lost_before reported ahead of its gap, not used yet
        self.credit_position = 0
        self.overreported = 0

    @property
    def busy(self) -> bool:
        """Something open that later records may settle (a gap, or early reports)."""
        return bool(self.pending or self.credit)

    @staticmethod
    def _cover(entry: _Open, rule: str, available: int) -> int:
        take = min(entry.remaining, available)
        setattr(entry.gap, rule, getattr(entry.gap, rule) + take)
        entry.remaining -= take
        return available - take

    def _prune(self) -> None:
        if any(not entry.remaining for entry in self.pending):
            self.pending = deque(entry for entry in self.pending if entry.remaining)

    def record(self, position: int, gap: Gap | None, lost_before: int) -> None:
        """One record: the gap right before it (if any), then its lost_before."""
        own = None
        if gap is not None:
            own = _Open(gap, position, gap.size)
            self.pending.append(own)
        available = lost_before
        if own is not None and available:
            available = self._cover(own, "lost_before", available)
        for entry in self.pending:  # reported late: older gaps, oldest first
            if not available:
                break
            if entry is not own:
                available = self._cover(entry, "neighbour", available)
        if self.credit:  # reported early by an earlier record
            for entry in self.pending:
                if not self.credit:
                    break
                self.credit = self._cover(entry, "neighbour", self.credit)
        if available:
            self.credit += available
            self.credit_position = position
        self._prune()
        self._expire(position)

    def _expire(self, position: int) -> None:
        while self.pending and position - self.pending[0].position >= self.tolerance:
            self._settle(self.pending.popleft())
        if self.credit and position - self.credit_position >= self.tolerance:
            self.overreported += self.credit
            self.credit = 0

    def _settle(self, entry: _Open) -> None:
        """No report came: producer losses (never reported) or unexplained."""
        take = min(entry.remaining, self.producer_budget)
        entry.gap.producer += take
        self.producer_budget -= take
        entry.gap.unexplained += entry.remaining - take
        entry.remaining = 0

    def finish(self, tail: Gap | None, unreported: int) -> None:
        """The end: open gaps settle; the tail takes early reports, then the ledger's
        unreported losses, then producer losses."""
        while self.pending:
            self._settle(self.pending.popleft())
        if tail is not None:
            entry = _Open(tail, -1, tail.size)
            self.credit = self._cover(entry, "neighbour", self.credit)
            if unreported > 0:
                self._cover(entry, "ledger", unreported)
            self._settle(entry)
        self.overreported += self.credit
        self.credit = 0


def find_gaps(
    key: StreamKey,
    trace: StreamTrace,
    ledger: Ledger | None,
    *,
    leading: bool = True,
    trailing: bool = True,
    tolerance: int = DEFAULT_TOLERANCE,
) -> StreamGaps:
    """Judge one stream's records against its ledger (see the module docstring).

    ``leading``: the read covers the session's start, so seqs before the first record
    are a gap. ``trailing``: it covers the end, so with a final ledger, seqs after the
    last record up to ``fired`` are a gap (the tail).
    """
    unique, duplicated = _sorted_unique(trace.seqs, trace.lost_befores)
    producer_budget = ledger.lost.get("producer", 0) if ledger else 0
    walk = _Walk(producer_budget, tolerance)
    gaps: list[Gap] = []
    lost_before_total = 0
    beyond = 0
    fired = ledger.fired if ledger is not None and ledger.final else None
    previous = 0 if leading or not unique else unique[0][0] - 1
    for position, (seq, lost_before) in enumerate(unique):
        if fired is not None and seq > fired:
            beyond += 1
        if seq == previous + 1 and not lost_before and not walk.busy:
            previous = seq  # the common case: contiguous, nothing reported, nothing open
            continue
        gap = None
        if seq > previous + 1:
            gap = Gap(previous + 1, seq - 1)
            gaps.append(gap)
        lost_before_total += lost_before
        walk.record(position, gap, lost_before)
        previous = seq
    tail = None
    unreported = 0
    if trailing and fired is not None and ledger is not None and fired > previous:
        tail = Gap(previous + 1, fired)
        gaps.append(tail)
        reported = sum(ledger.lost.get(stage, 0) for stage in NON_PRODUCER_STAGES)
        unreported = reported - lost_before_total
    walk.finish(tail, unreported)
    return StreamGaps(
        key=key,
        records=len(trace.seqs),
        delivered=len(unique),
        duplicates=len(duplicated),
        duplicate_seqs=duplicated[:20],
        first_seq=unique[0][0] if unique else None,
        last_seq=unique[-1][0] if unique else None,
        lost_before_total=lost_before_total,
        gaps=gaps,
        overreported=walk.overreported,
        beyond_ledger=beyond,
        ledger=ledger,
    )
