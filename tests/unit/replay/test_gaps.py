"""The gap rules replay and audit share (bridge/replay/gaps.py), case by case."""

from __future__ import annotations

from bridge.replay.gaps import Ledger, StreamTrace, find_gaps

KEY = ("node-a", "session-1", "mempool:added")


def trace(*records: tuple[int, int] | int) -> StreamTrace:
    out = StreamTrace()
    for record in records:
        seq, lost_before = record if isinstance(record, tuple) else (record, 0)
        out.add(seq, lost_before)
    return out


def ledger(fired: int, final: bool = True, **lost: int) -> Ledger:
    totals = {"kernel": 0, "bridge": 0, "producer": 0, "node": 0, **lost}
    return Ledger(fired, fired - sum(totals.values()), totals, final)


def test_contiguous_stream_has_no_gaps() -> None:
    result = find_gaps(KEY, trace(*range(1, 101)), ledger(100))
    assert result.gaps == []
    assert (result.delivered, result.duplicates, result.unexplained) == (100, 0, 0)


def test_gap_reported_by_the_next_record() -> None:
    result = find_gaps(KEY, trace(1, 2, (5, 2), 6), ledger(6, kernel=2))
    (gap,) = result.gaps
    assert (gap.first, gap.last, gap.lost_before, gap.covered_by) == (3, 4, 2, "lost_before")
    assert result.unexplained == 0


def test_leading_gap_is_a_gap_when_the_read_covers_the_start() -> None:
    result = find_gaps(KEY, trace((3, 2), 4), ledger(4, kernel=2))
    assert [(g.first, g.last, g.covered_by) for g in result.gaps] == [(1, 2, "lost_before")]
    partial = find_gaps(KEY, trace(3, 4), None, leading=False)
    assert partial.gaps == []


def test_loss_reported_by_the_record_before_the_gap_is_a_neighbour() -> None:
    # two CPUs: seq 3 committed after its reserve saw seq 4's failed reserve
    result = find_gaps(KEY, trace(1, 2, (3, 1), 5, 6), ledger(6, kernel=1))
    (gap,) = result.gaps
    assert (gap.first, gap.neighbour, gap.covered_by) == (4, 1, "neighbour")
    assert result.unexplained == 0
    assert result.overreported == 0


def test_loss_reported_a_few_records_late_is_a_neighbour() -> None:
    result = find_gaps(KEY, trace(1, 3, 4, (5, 1), 6), ledger(6, kernel=1))
    (gap,) = result.gaps
    assert (gap.first, gap.covered_by) == (2, "neighbour")


def test_report_beyond_the_tolerance_leaves_the_gap_unexplained() -> None:
    records = [1, *range(3, 50), (50, 1), 51]
    result = find_gaps(KEY, trace(*records), ledger(51, kernel=1), tolerance=8)
    (gap,) = result.gaps
    assert gap.unexplained == 1
    assert result.overreported == 1


def test_unreported_gap_is_a_producer_loss_when_the_ledger_has_one() -> None:
    result = find_gaps(KEY, trace(1, 2, 4, 5), ledger(5, producer=1))
    (gap,) = result.gaps
    assert (gap.first, gap.producer, gap.covered_by) == (3, 1, "producer")


def test_a_report_lost_with_its_record_at_the_producer_is_covered_by_the_ledger() -> None:
    """Seq 3 and 4 were lost in the ring; seq 5 reported them (lost_before=2) but timed
    out at the producer, so no record in the topic reports them. The ledger holds all
    three: one producer loss, two kernel losses that no lost_before read carries."""
    result = find_gaps(KEY, trace(1, 2, 6, 7), ledger(7, kernel=2, producer=1))
    (gap,) = result.gaps
    assert (gap.first, gap.last, gap.producer, gap.ledger) == (3, 5, 1, 2)
    assert result.unexplained == 0


def test_unreported_losses_cover_only_gaps_that_lost_a_record_at_the_producer() -> None:
    """Without a producer loss in the gap, nothing can have carried the report away:
    kernel losses no record reports stay unexplained in the middle of a stream."""
    result = find_gaps(KEY, trace(1, 2, 5, 6), ledger(6, kernel=2))
    assert result.unexplained == 2
    # ... and the pool is shared: what one gap takes, the tail cannot.
    shared = find_gaps(KEY, trace(1, 5, 6), ledger(8, kernel=3, producer=1))
    assert [(g.first, g.last, g.producer, g.ledger) for g in shared.gaps] == [
        (2, 4, 1, 2),
        (7, 8, 0, 1),
    ]
    assert shared.unexplained == 1


def test_unreported_gap_without_ledger_losses_is_unexplained() -> None:
    result = find_gaps(KEY, trace(1, 2, 4, 5), ledger(5))
    assert result.unexplained == 1
    assert result.gaps[0].covered_by == "unexplained"


def test_tail_is_covered_by_the_ledgers_unreported_losses() -> None:
    result = find_gaps(KEY, trace(1, (3, 1)), ledger(6, kernel=4))
    assert [(g.first, g.last, g.covered_by) for g in result.gaps] == [
        (2, 2, "lost_before"),
        (4, 6, "ledger"),
    ]
    assert result.unexplained == 0


def test_tail_beyond_the_ledgers_losses_is_unexplained() -> None:
    result = find_gaps(KEY, trace(1, 2), ledger(5, kernel=1))
    (tail,) = result.gaps
    assert (tail.first, tail.last, tail.ledger, tail.unexplained) == (3, 5, 1, 2)


def test_tail_only_counts_with_a_final_ledger_and_a_read_to_the_end() -> None:
    assert find_gaps(KEY, trace(1, 2), ledger(5, final=False)).gaps == []
    assert find_gaps(KEY, trace(1, 2), ledger(5), trailing=False).gaps == []


def test_duplicates_and_records_beyond_the_ledger() -> None:
    result = find_gaps(KEY, trace(1, 2, 2, 3, 4), ledger(3))
    assert (result.records, result.delivered, result.duplicates) == (5, 4, 1)
    assert result.duplicate_seqs == [2]
    assert result.beyond_ledger == 1


def test_out_of_order_records_are_sorted_first() -> None:
    result = find_gaps(KEY, trace(2, 1, (5, 1), 3), ledger(5, kernel=1))
    (gap,) = result.gaps
    assert (gap.first, gap.covered_by) == (4, "lost_before")
