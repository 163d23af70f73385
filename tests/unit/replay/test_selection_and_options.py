"""Selections from the committed schemas, time parsing, and the flat output columns."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest

from bridge.cli.replay_options import parse_time
from bridge.codec.single_object import committed_schemas
from bridge.replay.kafka_range import ReplayError, Window, to_ns
from bridge.replay.selection import Selection, event_topics, match_streams, prefix_of
from bridge.replay.writers import ENVELOPE_COLUMNS, columns_for

STORE = committed_schemas()


def test_streams_by_name_glob_and_subsystem() -> None:
    assert match_streams(["mempool:added"], STORE) == {"mempool:added"}
    assert match_streams(["net:*_message"], STORE) == {
        "net:inbound_message",
        "net:outbound_message",
    }
    assert "validation:block_connected" in match_streams(["validation"], STORE)
    with pytest.raises(ReplayError, match="no event type matches"):
        match_streams(["nonsense:thing"], STORE)


def test_topics_follow_the_streams() -> None:
    assert event_topics("p", STORE, {"mempool:added", "net:inbound_message"}) == [
        "p.mempool",
        "p.net",
    ]
    assert "p.utxocache" in event_topics("p", STORE)
    assert prefix_of("a.b.net") == "a.b"


def test_unselected_event_types_are_skipped_by_fingerprint() -> None:
    selection = Selection(STORE, streams={"mempool:added"})
    added = STORE.by_name("tracebridge.mempool.Added").header
    removed = STORE.by_name("tracebridge.mempool.Removed").header
    assert not selection.skips_value(added + b"body")
    assert selection.skips_value(removed + b"body")
    assert not selection.skips_value(b"\x00\x00\x00\x00\x07")  # registry framing: decode it


def test_times_parse_exactly() -> None:
    assert parse_time("2026-11-22T10:00:00.000001Z") == 1_795_341_600_000_001_000
    assert parse_time("2026-11-22T10:00:00") == parse_time("2026-11-22T10:00:00+00:00")
    assert parse_time("1795341600s") == 1_795_341_600 * 10**9
    assert parse_time("1795341600000ms") == 1_795_341_600 * 10**9
    with pytest.raises(click.BadParameter):
        parse_time("yesterday")
    assert to_ns(datetime(2026, 11, 22, 10, tzinfo=UTC)) == 1_795_341_600 * 10**9
    with pytest.raises(ReplayError, match="time zone"):
        to_ns(datetime(2026, 11, 22, 10))


def test_window_bounds() -> None:
    window = Window(start_ns=10, end_ns=20)
    assert [window.admits(t) for t in (9, 10, 19, 20)] == [False, True, True, False]
    assert Window().from_start
    assert Window().to_end
    assert not Window(start_offset=5).from_start


def test_columns_are_the_envelope_then_the_selected_fields() -> None:
    columns = columns_for(STORE, {"mempool:added"})
    assert columns.names[: len(ENVELOPE_COLUMNS)] == list(ENVELOPE_COLUMNS)
    fields = columns.names[len(ENVELOPE_COLUMNS) :]
    assert fields[:2] == ["txid", "txid_hex"]
    assert columns.kinds["txid"] == ("bytes", True)
    assert columns.kinds["seq"] == ("int", False)
