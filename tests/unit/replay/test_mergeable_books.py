"""The audit's books are compact and merge exactly (bridge/replay/gaps.py, audit.py).

``find_gaps`` walks runs of seqs and the records with a lost_before instead of every
record, and ``tracebridge audit --workers`` merges books that readers of different
partitions built. Both must change nothing: here the verdicts are required to equal,
field for field, those of the per-record walk (the reference below, the algorithm as it
was before the books were compacted), for any records in any order, split among any
number of readers, merged in any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.replay.audit import Audit
from bridge.replay.gaps import Gap, Ledger, StreamGaps, StreamTrace, _Walk, find_gaps

KEY = ("node-a", "session-1", "mempool:added")
STAGES = ("kernel", "bridge", "producer", "node")


def reference_find_gaps(
    seqs: Sequence[int],
    lost_befores: Sequence[int],
    ledger: Ledger | None,
    *,
    leading: bool,
    trailing: bool,
    tolerance: int,
) -> StreamGaps:
    """Every distinct seq visited in turn, the smallest lost_before of a duplicated seq
    kept (the per-record walk; the coverage rules themselves are ``_Walk``'s)."""
    pairs = sorted(zip(seqs, lost_befores, range(len(seqs)), strict=True))
    unique: list[tuple[int, int]] = []
    duplicated: list[int] = []
    for seq, lost_before, _ in pairs:
        if unique and unique[-1][0] == seq:
            duplicated.append(seq)
        else:
            unique.append((seq, lost_before))
    producer = ledger.lost.get("producer", 0) + ledger.in_doubt if ledger else 0
    reported = sum(ledger.lost[s] for s in ("kernel", "bridge", "node")) if ledger else 0
    walk = _Walk(producer, max(0, reported - sum(lb for _, lb in unique)), tolerance)
    gaps: list[Gap] = []
    lost_before_total = beyond = 0
    fired = ledger.fired if ledger is not None and ledger.final else None
    previous = 0 if leading or not unique else unique[0][0] - 1
    for position, (seq, lost_before) in enumerate(unique):
        if fired is not None and seq > fired:
            beyond += 1
        if seq == previous + 1 and not lost_before and not walk.busy:
            previous = seq
            continue
        gap = None
        if seq > previous + 1:
            gap = Gap(previous + 1, seq - 1)
            gaps.append(gap)
        lost_before_total += lost_before
        walk.record(position, gap, lost_before)
        previous = seq
    tail = None
    if trailing and fired is not None and ledger is not None and fired > previous:
        tail = Gap(previous + 1, fired)
        gaps.append(tail)
    walk.finish(tail)
    return StreamGaps(
        KEY, len(seqs), len(unique), len(duplicated), duplicated[:20],
        unique[0][0] if unique else None, unique[-1][0] if unique else None,
        lost_before_total, gaps, walk.overreported, beyond, ledger,
    )  # fmt: skip


def trace_of(records: Sequence[tuple[int, int]]) -> StreamTrace:
    trace = StreamTrace()
    for seq, lost_before in records:
        trace.add(seq, lost_before)
    return trace


ledgers = st.one_of(
    st.none(),
    st.builds(
        lambda fired, lost, final, in_doubt: Ledger(
            fired, 0, dict(zip(STAGES, lost, strict=True)), final, in_doubt
        ),
        st.integers(0, 90),
        st.tuples(*(st.integers(0, 6) for _ in STAGES)),
        st.booleans(),
        st.integers(0, 3),
    ),
)
# Anything: seqs in any order, repeated, with any lost_before.
scattered = st.lists(st.tuples(st.integers(1, 80), st.integers(0, 4)), max_size=120)


@st.composite
def realistic_with_ledger(draw: st.DrawFn) -> tuple[list[tuple[int, int]], Ledger]:
    """A stream as a bridge writes it: seqs in order, some lost (each loss reported by
    the record after the gap, or a few records earlier or later, or never: the cases the
    tolerance decides), neighbours now and then swapped, a few duplicates."""
    fired = draw(st.integers(0, 400))
    lost = draw(st.sets(st.integers(1, max(fired, 1)), max_size=30)) if fired else set()
    kept = [seq for seq in range(1, fired + 1) if seq not in lost]
    reports = [0] * len(kept)
    for seq in sorted(lost):
        after = next((i for i, s in enumerate(kept) if s > seq), len(kept))
        where = draw(st.one_of(st.none(), st.integers(-3, 9)))
        if where is not None and 0 <= after + where < len(kept):
            reports[after + where] += 1
    records = list(zip(kept, reports, strict=True))
    for index in draw(st.lists(st.integers(0, max(len(records) - 2, 0)), max_size=10)):
        if index + 1 < len(records):
            records[index], records[index + 1] = records[index + 1], records[index]
    for index in draw(st.lists(st.integers(0, max(len(records) - 1, 0)), max_size=3)):
        if records:
            records.insert(index, records[min(index, len(records) - 1)])
    # the books a bridge would close them with (losses at the end included)
    ledger = Ledger(
        fired, fired - len(lost), {**dict.fromkeys(STAGES, 0), "kernel": len(lost)}, True
    )
    return records, ledger


def realistic() -> st.SearchStrategy[list[tuple[int, int]]]:
    return realistic_with_ledger().map(lambda pair: pair[0])


def check_against_reference(
    records: list[tuple[int, int]], ledger: Ledger | None, options: dict[str, Any]
) -> None:
    seqs = [seq for seq, _ in records]
    lost_befores = [lost_before for _, lost_before in records]
    expected = reference_find_gaps(seqs, lost_befores, ledger, **options)
    assert find_gaps(KEY, trace_of(records), ledger, **options) == expected


options = st.fixed_dictionaries(
    {"leading": st.booleans(), "trailing": st.booleans(), "tolerance": st.integers(0, 6)}
)


@given(scattered, ledgers, options)
def test_compact_walk_equals_the_per_record_walk(
    records: list[tuple[int, int]], ledger: Ledger | None, options: dict[str, Any]
) -> None:
    check_against_reference(records, ledger, options)


@given(realistic_with_ledger(), st.one_of(st.none(), ledgers), options)
def test_compact_walk_equals_the_per_record_walk_on_realistic_streams(
    stream: tuple[list[tuple[int, int]], Ledger], other: Ledger | None, options: dict[str, Any]
) -> None:
    """Against the stream's own books, and against books that do not fit it."""
    records, ledger = stream
    check_against_reference(records, ledger, options)
    check_against_reference(records, other, options)


@given(st.one_of(scattered, realistic()), ledgers, st.data())
def test_merged_traces_judge_as_one(
    records: list[tuple[int, int]], ledger: Ledger | None, data: st.DataObject
) -> None:
    """Records split among readers, each share in its order, merged in any order."""
    readers = data.draw(st.integers(1, 4))
    shares: list[list[tuple[int, int]]] = [[] for _ in range(readers)]
    for record in records:
        shares[data.draw(st.integers(0, readers - 1))].append(record)
    parts = [trace_of(share) for share in data.draw(st.permutations(shares))]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    assert find_gaps(KEY, merged, ledger) == find_gaps(KEY, trace_of(records), ledger)


# -- whole audits: envelopes and heartbeats of several nodes, split among readers ---------


def envelope(node: str, stream: str, seq: int, lost_before: int, lost: int) -> dict[str, Any]:
    return {
        "node_id": node,
        "session_id": f"{node}-s",
        "stream": stream,
        "seq": seq,
        "lost_before": lost_before,
        "lost": {"kernel": lost, "bridge": 0, "producer": 0, "node": 0},
    }


def heartbeat(node: str, seq: int, final: bool, fired: int, kernel: int, delay: int) -> Any:
    return {
        "node_id": node,
        "session_id": f"{node}-s",
        "kind": "SESSION_END" if final else "PERIODIC",
        "heartbeat_seq": seq,
        "attach_delay_ns": delay,
        "streams": [
            {
                "stream": stream,
                "fired": fired,
                "acked": fired - kernel,
                "lost": {"kernel": kernel, "bridge": 0, "producer": 0, "node": 0},
            }
            for stream in ("mempool:added", "net:inbound_message")
        ],
    }


items = st.one_of(
    st.builds(
        lambda *a: ("envelope", envelope(*a)),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["mempool:added", "net:inbound_message"]),
        st.integers(1, 40),
        st.integers(0, 3),
        st.integers(0, 5),
    ),
    # heartbeats repeat their (kind, heartbeat_seq) with other numbers: a forged or
    # doubled ledger must be chosen the same way whatever the reading order
    st.builds(
        lambda *a: ("heartbeat", heartbeat(*a)),
        st.sampled_from(["a", "b", "c"]),
        st.integers(1, 3),
        st.booleans(),
        st.integers(0, 45),
        st.integers(0, 4),
        st.integers(0, 3),
    ),
    st.builds(
        lambda *a: ("undecodable", a),
        st.sampled_from(["t.net", "t.mempool"]),
        st.integers(0, 3),
        st.integers(0, 50),
    ),
)


def feed(audit: Audit, batch: Sequence[tuple[str, Any]]) -> Audit:
    for kind, value in batch:
        if kind == "envelope":
            audit.add_envelope(value)
        elif kind == "heartbeat":
            audit.add_heartbeat(value)
        else:
            topic, partition, offset = value
            audit.add_undecodable(topic, partition, offset, "bad magic")
    return audit


@given(st.lists(items, max_size=150), st.data())
def test_merged_audits_give_the_same_report(
    batch: list[tuple[str, Any]], data: st.DataObject
) -> None:
    nodes = data.draw(st.one_of(st.none(), st.lists(st.sampled_from(["a", "b"]), min_size=1)))
    readers = data.draw(st.integers(1, 4))
    shares: list[list[tuple[str, Any]]] = [[] for _ in range(readers)]
    for item in batch:
        shares[data.draw(st.integers(0, readers - 1))].append(item)
    parts = [feed(Audit(nodes), share) for share in data.draw(st.permutations(shares))]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    one = feed(Audit(nodes), batch)
    choices: list[dict[str, Any]] = [{}, {"require_closed": True, "tolerance": 2}]
    for options in choices:
        assert merged.judge(**options).as_dict() == one.judge(**options).as_dict()


def test_the_highest_seqs_totals_do_not_depend_on_who_read_it_first() -> None:
    """An open stream without a ledger shows its last record's running totals; when that
    seq is there twice with different totals, the larger is shown, in any order."""
    first = envelope("a", "mempool:added", 7, 0, 1)
    second = envelope("a", "mempool:added", 7, 0, 2)
    shown = set()
    for order in ((first, second), (second, first)):
        parts = [feed(Audit(), [("envelope", value)]) for value in order]
        parts[0].merge(parts[1])
        one = feed(Audit(), [("envelope", value) for value in order])
        (merged,), (single,) = parts[0].judge().streams, one.judge().streams
        assert merged.lost == single.lost
        shown.add(merged.lost["kernel"])
    assert shown == {2}


def test_runs_skipped_at_the_end_still_age_an_early_report() -> None:
    """Seq 11 is lost after the last record; seq 8 reported a loss early. Two records
    later that report has aged past the tolerance, so it must not cover the tail: the
    skipped run 9..10 counts as much as records walked one by one."""
    records = [(seq, 1 if seq == 8 else 0) for seq in range(1, 11)]
    ledger = Ledger(11, 10, {**dict.fromkeys(STAGES, 0), "kernel": 1}, True)
    for tolerance in (1, 2, 3):
        options = {"leading": True, "trailing": True, "tolerance": tolerance}
        check_against_reference(records, ledger, options)
    aged = find_gaps(KEY, trace_of(records), ledger, tolerance=1)
    assert (aged.overreported, aged.gaps[-1].covered_by) == (1, "unexplained")
