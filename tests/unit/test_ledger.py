"""The session ledger joins the source's, the encoder's and the sink's counts.

A real native encoder is fed ring records; the Kafka sink is a stand-in holding the two
lists the ledger reads. Expected numbers are worked out by hand from the scenario.
"""

from __future__ import annotations

from typing import Any, cast

import fastavro
import pytest

from bridge import __version__
from bridge.codec.native import Encoder, configure
from bridge.codec.single_object import committed_schemas
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.envelope import LossStage, SourceKind
from bridge.events.layout import RecordFlag
from bridge.events.spec import EventSpec
from bridge.ledger import SessionLedger, SourceCounts, Stream, StreamLedger
from bridge.sinks.kafka.producer import DeliveryCounts, KafkaSink
from tests.support.raw_records import build_record

HEARTBEAT = "tracebridge.bridge.Heartbeat"
ADDED = BY_NAME["mempool:added"]
REJECTED = BY_NAME["mempool:rejected"]
SESSION = "6f1c0d9e-0000-4000-8000-00000000abcd"


def usdt_stream(spec: EventSpec) -> Stream:
    """A USDT tracepoint is one stream of one record type, numbered by its tp_id."""
    return Stream(spec.tp_id, spec.name, (spec.tp_id,))


class FakeSink:
    """What the ledger reads of KafkaSink: per-tp_id produced, acked, in-doubt counts."""

    def __init__(self) -> None:
        self.produced = [0] * 256
        self.acked = [0] * 256
        self.in_doubt = [0] * 256

    def counts(self) -> DeliveryCounts:
        return DeliveryCounts(self.produced, self.acked, [0] * 256, self.in_doubt)


class Scenario:
    def __init__(self) -> None:
        self.encoder = Encoder()
        configure(self.encoder, EVENTS, committed_schemas())
        self.encoder.set_session("node-1", SourceKind.USDT, SESSION, 0)
        self.sink = FakeSink()
        self.source: dict[int, SourceCounts] = {}
        self.ledger = SessionLedger(
            node_id="node-1",
            source=SourceKind.USDT,
            session_id=SESSION,
            streams=[usdt_stream(ADDED), usdt_stream(REJECTED)],
            encoder=self.encoder,
            sink=cast(KafkaSink, self.sink),
            source_counts=lambda: dict(self.source),
            node_pid=4242,
            node_endpoint="/usr/local/bin/bitcoind",
        )

    def feed_added(self, seq: int, lost_before: int = 0, flags: int = 0) -> tuple[int, int]:
        raw = build_record(
            ADDED,
            {"txid": bytes(32), "vsize": 100, "fee": 1000},
            seq=seq,
            lost_before=lost_before,
            flags=flags,
        )
        good, dead = self.encoder.encode_one(raw)
        return len(good), len(dead)

    def book(self, name: str) -> StreamLedger:
        return next(b for b in self.ledger.streams() if b.stream == name)


@pytest.fixture
def scenario() -> Scenario:
    return Scenario()


def test_empty_session(scenario: Scenario) -> None:
    books = scenario.ledger.streams()
    assert [b.stream for b in books] == ["mempool:added", "mempool:rejected"]
    for book in books:
        assert (book.fired, book.captured, book.produced, book.acked) == (0, 0, 0, 0)
        assert book.in_flight == 0
        assert book.lost == {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
        assert book.last_seq == 0


def test_books_while_running(scenario: Scenario) -> None:
    # seq 1-3 arrive; 4-5 were lost in the ring; 6 arrives; 7 had an unreadable pointer
    # (dead letter); 8 fired but is still in the ring.
    for seq in (1, 2, 3):
        assert scenario.feed_added(seq) == (1, 0)
    assert scenario.feed_added(6, lost_before=2) == (1, 0)
    assert scenario.feed_added(7, flags=RecordFlag.READ_ERROR) == (0, 1)
    scenario.source[ADDED.tp_id] = SourceCounts(fired=8, lost_kernel=2)
    # Four good records handed to Kafka, three acknowledged so far.
    scenario.sink.produced[ADDED.tp_id] = 4
    scenario.sink.acked[ADDED.tp_id] = 3

    book = scenario.book("mempool:added")
    assert book.fired == 8
    assert book.captured == 5
    assert book.produced == 4
    assert book.acked == 3
    assert book.dead_lettered == 1
    assert book.last_seq == 7
    assert book.lost == {"kernel": 2, "bridge": 1, "producer": 0, "node": 0}
    assert book.in_flight == 2  # seq 6 awaiting its ack, seq 8 still in the ring
    # The other stream is untouched.
    other = scenario.book("mempool:rejected")
    assert (other.fired, other.captured, other.in_flight) == (0, 0, 0)


def test_books_at_session_end(scenario: Scenario) -> None:
    for seq in (1, 2, 3):
        scenario.feed_added(seq)
    scenario.feed_added(6, lost_before=2)
    scenario.feed_added(7, flags=RecordFlag.READ_ERROR)
    scenario.feed_added(8)
    scenario.source[ADDED.tp_id] = SourceCounts(fired=8, lost_kernel=2)
    scenario.sink.produced[ADDED.tp_id] = 5
    scenario.sink.acked[ADDED.tp_id] = 4
    # One record failed delivery: the sink reports it to the encoder as a producer loss.
    scenario.encoder.add_loss(ADDED.tp_id, LossStage.PRODUCER, 1, False)
    book = scenario.book("mempool:added")
    assert book.lost == {"kernel": 2, "bridge": 1, "producer": 1, "node": 0}
    assert book.in_flight == 0
    assert book.acked + sum(book.lost.values()) == book.fired


def test_records_in_doubt_are_neither_acked_nor_lost(scenario: Scenario) -> None:
    """A record that timed out after it was sent may be in the topic: the books carry
    it apart, so the session still closes (nothing in flight) without a false loss."""
    for seq in range(1, 6):
        scenario.feed_added(seq)
    scenario.source[ADDED.tp_id] = SourceCounts(fired=5)
    scenario.sink.produced[ADDED.tp_id] = 5
    scenario.sink.acked[ADDED.tp_id] = 3
    assert scenario.book("mempool:added").in_flight == 2
    scenario.sink.in_doubt[ADDED.tp_id] = 2
    book = scenario.book("mempool:added")
    assert book.in_doubt == 2
    assert book.in_flight == 0
    assert book.lost == {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
    assert book.to_avro()["in_doubt"] == 2
    assert scenario.book("mempool:rejected").in_doubt == 0


def test_backpressure_drops_count_as_bridge_losses(scenario: Scenario) -> None:
    for seq in range(1, 11):
        scenario.feed_added(seq)
    scenario.encoder.add_loss(ADDED.tp_id, LossStage.BRIDGE, 4, True)
    scenario.source[ADDED.tp_id] = SourceCounts(fired=10)
    scenario.sink.produced[ADDED.tp_id] = 6
    scenario.sink.acked[ADDED.tp_id] = 6
    book = scenario.book("mempool:added")
    assert book.lost["bridge"] == 4
    assert book.in_flight == 0


def test_node_losses_take_the_larger_report(scenario: Scenario) -> None:
    scenario.encoder.add_loss(ADDED.tp_id, LossStage.NODE, 3, True)
    scenario.source[ADDED.tp_id] = SourceCounts(fired=3, lost_node=1)
    assert scenario.book("mempool:added").lost["node"] == 3
    scenario.source[ADDED.tp_id] = SourceCounts(fired=5, lost_node=5)
    assert scenario.book("mempool:added").lost["node"] == 5


def test_stream_ledger_to_avro() -> None:
    book = StreamLedger(
        stream="mempool:added",
        fired=10,
        captured=9,
        produced=8,
        acked=7,
        dead_lettered=1,
        last_seq=10,
        lost={"kernel": 1, "bridge": 1, "producer": 0, "node": 0},
    )
    assert book.in_flight == 1
    assert book.to_avro() == {
        "stream": "mempool:added",
        "fired": 10,
        "captured": 9,
        "produced": 8,
        "acked": 7,
        "in_flight": 1,
        "dead_lettered": 1,
        "last_seq": 10,
        "lost": {"kernel": 1, "bridge": 1, "producer": 0, "node": 0},
        "in_doubt": 0,
    }


def heartbeat_schema() -> Any:
    return committed_schemas().by_name(HEARTBEAT).parsed


def test_heartbeats_are_numbered_and_valid(scenario: Scenario) -> None:
    scenario.feed_added(1)
    scenario.source[ADDED.tp_id] = SourceCounts(fired=1)
    scenario.sink.produced[ADDED.tp_id] = 1
    scenario.ledger.unattributed_dead_letters = 2

    first, books = scenario.ledger.heartbeat(final=False)
    assert fastavro.validation.validate(first, heartbeat_schema(), raise_errors=True)
    assert first["heartbeat_seq"] == 1
    assert first["kind"] == "PERIODIC"
    assert first["source"] == "USDT"
    assert first["node_id"] == "node-1"
    assert first["session_id"] == SESSION
    assert first["bridge_version"] == __version__
    assert first["node_pid"] == 4242
    assert first["node_endpoint"] == "/usr/local/bin/bitcoind"
    assert first["unattributed_dead_letters"] == 2
    assert first["streams"] == [book.to_avro() for book in books]
    assert [s["stream"] for s in first["streams"]] == ["mempool:added", "mempool:rejected"]
    assert first["streams"][0]["in_flight"] == 1

    scenario.sink.acked[ADDED.tp_id] = 1
    final, _ = scenario.ledger.heartbeat(final=True)
    assert final["heartbeat_seq"] == 2
    assert final["kind"] == "SESSION_END"
    assert final["ts_wall_ns"] >= first["ts_wall_ns"]
    assert final["streams"][0]["in_flight"] == 0

    store = committed_schemas()
    for record in (first, final):
        encoded = store.encode(HEARTBEAT, record)
        known, decoded = store.decode(encoded)
        assert known.full_name == HEARTBEAT
        assert decoded == record


def test_heartbeat_without_a_pid_is_valid() -> None:
    encoder = Encoder()
    configure(encoder, EVENTS, committed_schemas())
    ledger = SessionLedger(
        node_id="n",
        source=SourceKind.IPC,
        session_id="s",
        streams=[],
        encoder=encoder,
        sink=cast(KafkaSink, FakeSink()),
        source_counts=dict,
        node_pid=None,
        node_endpoint=None,
    )
    record, books = ledger.heartbeat(final=True)
    assert books == []
    assert record["streams"] == []
    assert record["source"] == "IPC"
    assert fastavro.validation.validate(record, heartbeat_schema(), raise_errors=True)
    _, decoded = committed_schemas().decode(committed_schemas().encode(HEARTBEAT, record))
    assert decoded["node_pid"] is None
