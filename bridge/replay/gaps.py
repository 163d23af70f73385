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
3. ``producer``: the ledger's producer-stage losses, which no lost_before carries,
   and its records in doubt (timed out after they were sent): each is either in the
   topic or a gap here, so together they bound these gaps;
4. ``ledger``: the ledger's non-producer losses that no lost_before in the topic
   reported (its total minus the sum of the lost_before read). Two kinds of gap have
   such losses: the tail, after the last record, where no record came to report them;
   and a gap that holds a producer loss, since the lost record may have been the one
   carrying the report (kernel losses, then the record after them timed out).

Whatever is left is ``unexplained``. Coverage is cumulative and greedy (oldest gap
first), so a loss reported one record off is accepted while a gap whose report never
comes within ``tolerance`` records is not. ``lost_before`` counts that no gap uses
within the tolerance are ``overreported`` (a warning: nothing is missing for them).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
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
    in_doubt: int = 0  # timed out after they were sent: in the topic, or lost

    @classmethod
    def from_book(cls, book: dict[str, Any], final: bool) -> Ledger:
        in_doubt = int(book.get("in_doubt", 0))  # absent in ledgers from bridges before it existed
        return cls(int(book["fired"]), int(book["acked"]), dict(book["lost"]), final, in_doubt)

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())


@dataclass
class StreamTrace:
    """What the records of one stream said, kept compact and mergeable.

    A stream's seqs arrive almost in order, so they are kept as runs of consecutive
    seqs (``runs``, plus the open run ``run_first..next_seq - 1``), and only the records
    with a non-zero ``lost_before`` are kept one by one (``reports``): a million records
    in order are one run, not two arrays of a million ints. That is what lets
    ``tracebridge audit --workers N`` ship each worker's books to the parent.

    Merging (:meth:`merge`) is exact and order-free: runs and reports are multisets, so
    a duplicate seen by two readers is still a duplicate, and a seq reported with a
    lost_before by one reader and without by another keeps the smaller, as one reader
    would (:meth:`summary`). ``last_lost`` is the running totals on the highest seq;
    equal highest seqs keep the larger totals, whatever the arrival order.
    """

    runs: list[tuple[int, int]] = field(default_factory=list)  # closed runs, may overlap
    run_first: int = 0
    next_seq: int | None = None  # one past the open run's last seq; None: no open run
    reports: list[tuple[int, int]] = field(default_factory=list)  # (seq, lost_before != 0)
    max_seq: int = 0
    last_lost: dict[str, int] | None = None  # running totals on the highest seq seen

    def add(self, seq: int, lost_before: int, lost: dict[str, int] | None = None) -> None:
        if seq == self.next_seq:
            self.next_seq = seq + 1
        else:
            self.jump(seq)
        if lost_before:
            self.reports.append((seq, lost_before))
        if seq > self.max_seq:
            self.max_seq = seq
            self.last_lost = lost
        elif seq == self.max_seq:
            self.tie(lost)

    def jump(self, seq: int) -> None:
        """A seq that does not extend the open run: close it and open one at ``seq``."""
        if self.next_seq is not None:
            self.runs.append((self.run_first, self.next_seq - 1))
        self.run_first = seq
        self.next_seq = seq + 1

    def tie(self, lost: dict[str, int] | None) -> None:
        """Another record with the highest seq: keep the larger totals (order-free)."""
        if lost is not None and (
            self.last_lost is None or sorted(lost.items()) > sorted(self.last_lost.items())
        ):
            self.last_lost = lost

    def all_runs(self) -> list[tuple[int, int]]:
        if self.next_seq is None:
            return list(self.runs)
        return [*self.runs, (self.run_first, self.next_seq - 1)]

    def merge(self, other: StreamTrace) -> None:
        """Add ``other``'s records (another reader's share of the same stream)."""
        self.runs.extend(other.all_runs())
        self.reports.extend(other.reports)
        if other.max_seq > self.max_seq:
            self.max_seq = other.max_seq
            self.last_lost = other.last_lost
        elif other.max_seq == self.max_seq:
            self.tie(other.last_lost)

    def summary(self) -> SeqSummary:
        """The distinct seqs, duplicates and reports, as :func:`find_gaps` walks them."""
        return SeqSummary.of(self.all_runs(), self.reports)


@dataclass(frozen=True)
class SeqSummary:
    """A stream's records normalised: distinct seqs as sorted, disjoint, maximal runs;
    every extra occurrence of a seq counted as a duplicate; and per distinct seq the
    smallest lost_before any of its records carried, listed when it is not zero."""

    distinct: list[tuple[int, int]]
    records: int
    duplicates: int
    duplicate_seqs: list[int]  # the smallest ones, one entry per extra occurrence
    reports: list[tuple[int, int]]  # (seq, lost_before), by seq

    @classmethod
    def of(cls, runs: list[tuple[int, int]], reports: list[tuple[int, int]]) -> SeqSummary:
        records = sum(last - first + 1 for first, last in runs)
        ordered = sorted(runs)
        if all(ordered[i][1] < ordered[i + 1][0] for i in range(len(ordered) - 1)):
            # no seq twice: one record per reported seq
            return cls(_joined(ordered), records, 0, [], sorted(reports))
        segments = _coverage(ordered)
        distinct = _joined([(first, last) for first, last, _ in segments])
        duplicates = 0
        listed: list[int] = []
        for first, last, times in segments:
            if times > 1:
                duplicates += (times - 1) * (last - first + 1)
                seq = first
                while len(listed) < MAX_DUPLICATES_LISTED and seq <= last:
                    listed.extend([seq] * min(times - 1, MAX_DUPLICATES_LISTED - len(listed)))
                    seq += 1
        return cls(distinct, records, duplicates, listed, _smallest_reports(segments, reports))


MAX_DUPLICATES_LISTED = 20


def _joined(ordered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted disjoint runs with adjacent ones joined (so each gap lies between two)."""
    out: list[tuple[int, int]] = []
    for first, last in ordered:
        if out and first == out[-1][1] + 1:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def _coverage(ordered: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(first, last, how many runs hold each seq in it) for every covered stretch."""
    edges: dict[int, int] = {}
    for first, last in ordered:
        edges[first] = edges.get(first, 0) + 1
        edges[last + 1] = edges.get(last + 1, 0) - 1
    points = sorted(edges)
    out = []
    times = 0
    for here, after in pairwise(points):
        times += edges[here]
        if times:
            out.append((here, after - 1, times))
    return out


def _smallest_reports(
    segments: list[tuple[int, int, int]], reports: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Per reported seq the smallest lost_before of its records: zero (so not listed)
    when it has more records than non-zero reports."""
    grouped: dict[int, list[int]] = {}
    for seq, lost_before in reports:
        grouped.setdefault(seq, []).append(lost_before)
    out = []
    index = 0
    for seq in sorted(grouped):
        while segments[index][1] < seq:
            index += 1
        if len(grouped[seq]) >= segments[index][2]:
            out.append((seq, min(grouped[seq])))
    return out


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


@dataclass
class _Open:
    """A gap not fully covered yet."""

    gap: Gap
    position: int  # index of the record right after it
    remaining: int


class _Walk:
    """The greedy, cumulative coverage walk of the module docstring."""

    def __init__(self, producer_budget: int, unreported: int, tolerance: int) -> None:
        self.producer_budget = producer_budget
        self.unreported = unreported  # the ledger's non-producer losses no report carried
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
        self.expire(position)

    def expire(self, position: int) -> None:
        """Gaps and early reports ``tolerance`` records behind ``position`` settle.

        A record with no gap before it and no lost_before changes nothing else (after
        any record, no early report is left while a gap is open), so a run of such
        records is one ``expire`` at its last position: :func:`find_gaps` skips runs."""
        while self.pending and position - self.pending[0].position >= self.tolerance:
            self._settle(self.pending.popleft())
        if self.credit and position - self.credit_position >= self.tolerance:
            self.overreported += self.credit
            self.credit = 0

    def _settle(self, entry: _Open) -> None:
        """No report came: producer losses (never reported), then -- if the gap holds
        one, which may have carried a report -- the ledger's unreported losses; or
        unexplained."""
        take = min(entry.remaining, self.producer_budget)
        entry.gap.producer += take
        self.producer_budget -= take
        entry.remaining -= take
        if entry.gap.producer and entry.remaining:
            self.unreported = self._cover(entry, "ledger", self.unreported)
        entry.gap.unexplained += entry.remaining
        entry.remaining = 0

    def finish(self, tail: Gap | None) -> None:
        """The end: open gaps settle; the tail takes early reports, then the ledger's
        unreported losses, then producer losses."""
        while self.pending:
            self._settle(self.pending.popleft())
        if tail is not None:
            entry = _Open(tail, -1, tail.size)
            self.credit = self._cover(entry, "neighbour", self.credit)
            self.unreported = self._cover(entry, "ledger", self.unreported)
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

    The walk visits only the records that matter, each at its position among the
    distinct seqs: the first record after a gap, and records with a lost_before. The
    records between them only age what is open (:meth:`_Walk.expire`), so the cost is
    per run and per report, not per record.
    """
    summary = trace.summary()
    distinct, reports = summary.distinct, summary.reports
    producer_budget = ledger.lost.get("producer", 0) + ledger.in_doubt if ledger else 0
    reported = sum(ledger.lost.get(stage, 0) for stage in NON_PRODUCER_STAGES) if ledger else 0
    unreported = max(0, reported - sum(lost_before for _, lost_before in reports))
    walk = _Walk(producer_budget, unreported, tolerance)
    gaps: list[Gap] = []
    lost_before_total = 0
    fired = ledger.fired if ledger is not None and ledger.final else None
    beyond = 0
    if fired is not None:
        beyond = sum(max(0, last - max(first, fired + 1) + 1) for first, last in distinct)
    previous = 0 if leading or not distinct else distinct[0][0] - 1
    position = 0  # of the run's first record among the distinct seqs
    walked = -1  # position of the last record the walk saw
    r = 0

    def visit(at: int, gap: Gap | None, lost_before: int) -> None:
        nonlocal lost_before_total, walked
        if at - 1 > walked:
            walk.expire(at - 1)  # the plain records since the last visit
        lost_before_total += lost_before
        walk.record(at, gap, lost_before)
        walked = at

    for first, last in distinct:
        if first > previous + 1:
            gap = Gap(previous + 1, first - 1)
            gaps.append(gap)
            lost_before = 0
            if r < len(reports) and reports[r][0] == first:
                lost_before = reports[r][1]
                r += 1
            visit(position, gap, lost_before)
        while r < len(reports) and reports[r][0] <= last:
            seq, lost_before = reports[r]
            r += 1
            visit(position + seq - first, None, lost_before)
        previous = last
        position += last - first + 1
    if position - 1 > walked:
        walk.expire(position - 1)
    tail = None
    if trailing and fired is not None and ledger is not None and fired > previous:
        tail = Gap(previous + 1, fired)
        gaps.append(tail)
    walk.finish(tail)
    return StreamGaps(
        key=key,
        records=summary.records,
        delivered=position,
        duplicates=summary.duplicates,
        duplicate_seqs=summary.duplicate_seqs,
        first_seq=distinct[0][0] if distinct else None,
        last_seq=distinct[-1][1] if distinct else None,
        lost_before_total=lost_before_total,
        gaps=gaps,
        overreported=walk.overreported,
        beyond_ledger=beyond,
        ledger=ledger,
    )
