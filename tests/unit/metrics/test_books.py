"""Ledger books → monotonic counters: deltas within a session, sums across sessions."""

from __future__ import annotations

import logging

import pytest

from bridge.ledger import StreamLedger
from bridge.metrics.books import BookTotals, StreamKey


def book(stream: str, fired: int, acked: int, kernel: int = 0, dead: int = 0) -> StreamLedger:
    return StreamLedger(
        stream=stream,
        fired=fired,
        captured=fired - kernel,
        produced=acked,
        acked=acked,
        dead_lettered=dead,
        last_seq=fired,
        lost={"kernel": kernel, "bridge": dead, "producer": 0, "node": 0},
    )


KEY = StreamKey("n1", "usdt", "mempool:added")


def test_heartbeats_of_one_session_add_only_what_changed() -> None:
    totals = BookTotals()
    totals.add("n1", "usdt", "s1", [book("mempool:added", 10, 7, kernel=1)])
    totals.add("n1", "usdt", "s1", [book("mempool:added", 30, 25, kernel=2, dead=1)])
    assert totals.totals[KEY]["events_fired"] == 30
    assert totals.totals[KEY]["events_delivered"] == 25
    assert totals.totals[KEY]["lost:kernel"] == 2
    assert totals.totals[KEY]["lost:bridge"] == 1
    assert totals.totals[KEY]["dead_letters"] == 1
    assert totals.in_flight[KEY] == 30 - 25 - 3


def test_a_new_session_starts_from_zero_and_the_counters_keep_rising() -> None:
    totals = BookTotals()
    totals.add("n1", "usdt", "s1", [book("mempool:added", 40, 40)])
    totals.add("n1", "usdt", "s2", [book("mempool:added", 5, 3, kernel=1)])
    assert totals.totals[KEY]["events_fired"] == 45
    assert totals.totals[KEY]["events_delivered"] == 43
    assert totals.totals[KEY]["lost:kernel"] == 1
    totals.add("n1", "usdt", "s2", [book("mempool:added", 9, 8, kernel=1)])
    assert totals.totals[KEY]["events_fired"] == 49
    assert totals.in_flight[KEY] == 0


def test_in_flight_of_a_stream_the_new_session_lacks_is_zeroed() -> None:
    totals = BookTotals()
    totals.add("n1", "usdt", "s1", [book("mempool:added", 10, 4)])
    totals.add("n1", "usdt", "s2", [book("mempool:removed", 1, 1)])
    assert totals.in_flight[KEY] == 0


def test_a_counter_never_goes_down(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    totals = BookTotals()
    totals.add("n1", "usdt", "s1", [book("mempool:added", 10, 10)])
    totals.add("n1", "usdt", "s1", [book("mempool:added", 8, 8)])  # a broken ledger
    totals.add("n1", "usdt", "s1", [book("mempool:added", 12, 12)])
    assert totals.totals[KEY]["events_fired"] == 12
    assert "went down" in caplog.text
