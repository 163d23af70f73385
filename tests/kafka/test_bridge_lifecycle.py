"""The bridge's session lifecycle with a scripted source (no BPF) and a real broker.

The real USDT source is covered end to end in tests/bpf; here a fake session feeds
records built by tests.support.raw_records, so failure paths can be forced precisely.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.codec import _native
from bridge.codec.native import configure
from bridge.codec.single_object import SchemaStore
from bridge.config import BridgeSettings, load_settings
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import SourceKind
from bridge.events.spec import EventSpec
from bridge.ledger import SourceCounts, Stream, StreamLedger
from tests.support.pipeline import final_books, read_topics, verdicts
from tests.support.raw_records import build_record

pytestmark = pytest.mark.kafka

ADDED = BY_NAME["mempool:added"]


class ScriptedSession:
    """Fires ``count`` mempool:added events over a few polls, then the node 'exits'."""

    kind = SourceKind.USDT
    node_pid: int | None = None
    node_endpoint: str | None = "scripted"

    def __init__(self, count: int) -> None:
        self.session_id = str(uuid.uuid4())
        self.record_types: tuple[EventSpec, ...] = (ADDED,)
        self.streams: tuple[Stream, ...] = (Stream(ADDED.tp_id, ADDED.name, (ADDED.tp_id,)),)
        self._pending = [
            build_record(ADDED, {"txid": bytes([i % 256]) * 32, "vsize": i, "fee": i}, seq=i)
            for i in range(1, count + 1)
        ]
        self._fired = count
        self._polls = 0

    def configure(self, encoder: _native.Encoder, store: SchemaStore) -> None:
        configure(encoder, self.record_types, store)

    def alive(self) -> bool:
        self._polls += 1
        return self._polls < 5

    def wait(self, timeout_s: float) -> None:
        pass

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected]]:
        good: list[_native.Encoded] = []
        dead: list[_native.Rejected] = []
        batch, self._pending = self._pending[:max_records], self._pending[max_records:]
        for raw in batch:
            encoded, rejected = encoder.encode_one(raw)
            good += encoded
            dead += rejected
        return good, dead

    def stop(self) -> None:
        pass

    def source_counts(self) -> dict[int, SourceCounts]:
        return {ADDED.tp_id: SourceCounts(fired=self._fired)}

    def close(self) -> None:
        pass


class ScriptedSource:
    reattach = True
    poll_interval_s = 0.001
    max_batch = 7

    def __init__(self, sessions: list[ScriptedSession], fail: Exception | None = None) -> None:
        self.sessions = sessions
        self.fail = fail

    def next_session(self, stop: threading.Event) -> ScriptedSession | None:
        if self.sessions:
            return self.sessions.pop(0)
        if self.fail is not None:
            raise self.fail
        return None


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
