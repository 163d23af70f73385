"""The bridge's session lifecycle with a scripted source (no BPF) and a real broker.

The real USDT source is covered end to end in tests/bpf; here a fake session feeds
records built by tests.support.raw_records, so failure paths can be forced precisely.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.config import BridgeSettings, load_settings
from bridge.events.catalog import BY_NAME
from bridge.ledger import StreamLedger
from tests.support.pipeline import final_books, read_topics, verdicts
from tests.support.scripted import ScriptedSession, ScriptedSource

pytestmark = pytest.mark.kafka

ADDED = BY_NAME["mempool:added"]


def settings(bootstrap: str, prefix: str) -> BridgeSettings:
    return load_settings(
        None,
        {
            "usdt": {"binary": "/nonexistent", "max_batch": 7},
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "linger_ms": 1},
        },
    )


def test_a_failing_ledger_observer_does_not_cost_the_session_its_final_ledger(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    def observer(books: list[StreamLedger]) -> None:
        raise RuntimeError("the view crashed")

    session = ScriptedSession(count=30)
    bridge = Bridge(
        settings(kafka_bootstrap, topic_prefix), ScriptedSource([session]), on_books=observer
    )
    bridge.run()
    records = read_topics(kafka_bootstrap, topic_prefix)
    book = final_books(records)[(session.session_id, "mempool:added")]
    assert (book["fired"], book["acked"], book["in_flight"]) == (30, 30, 0)
    assert all(v.ok for v in verdicts(records))


def test_a_crash_is_visible_in_the_status_file(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    status = tmp_path / "status.json"
    source = ScriptedSource([], fail=RuntimeError("the node locator broke"))
    bridge = Bridge(settings(kafka_bootstrap, topic_prefix), source, status_file=status)
    with pytest.raises(RuntimeError, match="locator broke"):
        bridge.run()
    written = json.loads(status.read_text())
    assert written["state"] == "failed"
    assert "the node locator broke" in written["error"]
    assert source.closed  # what it keeps between sessions is released even on a crash
