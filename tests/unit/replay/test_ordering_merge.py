"""Seq order per stream (bounded reorder buffer) and event-time merging of nodes."""

from __future__ import annotations

from typing import Any

from bridge.replay.events import Envelope, Event
from bridge.replay.merge import first_seen, merge_by_time, propagation_delays
from bridge.replay.ordering import SeqOrder, in_seq_order


def event(
    seq: int,
    *,
    node: str = "a",
    stream: str = "s",
    lost_before: int = 0,
    ts: int = 0,
    **fields: Any,
) -> Event:
    envelope: Envelope = {
        "node_id": node,
        "source": "USDT",
        "session_id": "x",
        "stream": stream,
        "seq": seq,
        "ts_mono_ns": ts,
        "ts_wall_ns": ts or seq,
        "lost_before": lost_before,
        "lost": {"kernel": 0, "bridge": 0, "producer": 0, "node": 0},
    }
    return Event("r", envelope, dict(fields), "t", 0, seq, 0)


def seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


def test_in_order_events_pass_straight_through() -> None:
    order = SeqOrder(window=4)
    assert [seqs(order.push(event(s))) for s in (1, 2, 3)] == [[1], [2], [3]]


def test_swapped_neighbours_are_put_back_in_order() -> None:
    out = list(in_seq_order([event(s) for s in (1, 3, 2, 5, 4, 6)]))
    assert seqs(out) == [1, 2, 3, 4, 5, 6]


def test_a_gap_reported_by_lost_before_does_not_hold_the_stream() -> None:
    order = SeqOrder(window=100)
    assert seqs(order.push(event(1))) == [1]
    assert seqs(order.push(event(4, lost_before=2))) == [4]


def test_an_unreported_gap_holds_at_most_the_window() -> None:
    order = SeqOrder(window=3)
    assert order.push(event(2)) == []
    assert order.push(event(3)) == []
    assert order.push(event(4)) == []
    assert seqs(order.push(event(5))) == [2, 3, 4, 5]


def test_streams_are_ordered_independently_and_late_records_counted() -> None:
    order = SeqOrder(window=1)
    out = []
    for e in (
        event(1, stream="x"),
        event(3, stream="y"),
        event(2, stream="y"),
        event(1, stream="y"),
        event(2, stream="x"),
    ):
        out.extend(order.push(e))
    out.extend(order.flush())
    assert [(e.stream, e.seq) for e in out if e.stream == "x"] == [("x", 1), ("x", 2)]
    assert order.late == 1  # y's seq 1 came after 2 and 3 had to leave


def test_merge_by_time_interleaves_nodes() -> None:
    a = [event(1, node="a", ts=10), event(2, node="a", ts=30)]
    b = [event(1, node="b", ts=20), event(2, node="b", ts=30)]
    merged = merge_by_time([*a, *b])
    assert [(e.node_id, e.ts_wall_ns) for e in merged] == [
        ("a", 10),
        ("b", 20),
        ("a", 30),
        ("b", 30),
    ]


def test_first_seen_and_delays() -> None:
    events = [
        event(1, node="a", ts=100, txid=b"t1"),
        event(2, node="a", ts=50, txid=b"t1"),
        event(1, node="b", ts=80, txid=b"t1"),
        event(2, node="b", ts=90, txid=b"t2"),
    ]
    seen = first_seen(events, lambda e: e.fields.get("txid"))
    assert seen == {b"t1": {"a": 50, "b": 80}, b"t2": {"b": 90}}
    (delay,) = propagation_delays(seen)
    assert (delay.key, delay.first_node, delay.node, delay.delay_ns) == (b"t1", "a", "b", 30)
