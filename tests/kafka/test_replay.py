"""tracebridge replay against a real broker: filters, ranges, order, formats, merge,
republish, and both framings in one topic."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bridge.cli.replay import replay_command
from bridge.codec.single_object import committed_schemas
from bridge.replay import ReadStats, read_events
from bridge.replay.audit import read_audit
from tests.support.forge import WALL_OFFSET_NS, Forge, create_topics, prefix_topics

pytestmark = [pytest.mark.kafka]

ADDED, REMOVED, INBOUND = "mempool:added", "mempool:removed", "net:inbound_message"
MINUTE = 60 * 10**9


def populate(forge: Forge) -> None:
    """Two nodes; node-a's mempool:added one a minute for 30 minutes, and more."""
    a = forge.session("node-a")
    for minute in range(30):
        a.event(ADDED, ktime_ns=minute * MINUTE)
    for _ in range(5):
        a.event(REMOVED)
        a.event(INBOUND)
    a.heartbeat()
    b = forge.session("node-b")
    for _ in range(7):
        b.event(ADDED)
    b.heartbeat()
    forge.flush()


def run(args: list[str]) -> Any:
    result = CliRunner().invoke(replay_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_node_and_stream_filters(kafka_bootstrap: str, topic_prefix: str) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge)
    topics = [f"{topic_prefix}.mempool", f"{topic_prefix}.net"]
    events = list(read_events(kafka_bootstrap, topics, nodes=["node-a"], streams=[ADDED]))
    assert [e.seq for e in events] == list(range(1, 31))
    assert {(e.node_id, e.stream, e.record) for e in events} == {
        ("node-a", ADDED, "tracebridge.mempool.Added")
    }
    assert events[0].fields["txid_hex"] == bytes(reversed(events[0].fields["txid"])).hex()
    both = list(read_events(kafka_bootstrap, topics, streams=[ADDED, INBOUND]))
    assert sorted({(e.node_id, e.stream) for e in both}) == [
        ("node-a", ADDED),
        ("node-a", INBOUND),
        ("node-b", ADDED),
    ]


def test_time_range_uses_offsets_for_times_and_is_exact(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge)
    stats = ReadStats()
    events = list(
        read_events(
            kafka_bootstrap,
            [f"{topic_prefix}.mempool"],
            streams=[ADDED],
            nodes=["node-a"],
            start=WALL_OFFSET_NS + 10 * MINUTE,
            end=WALL_OFFSET_NS + 20 * MINUTE,
            stats=stats,
        )
    )
    assert [e.seq for e in events] == list(range(11, 21))  # minutes 10..19
    # the window was found by timestamp: minutes 10..20 (+ the 10 s slack), not all 30
    assert stats.messages == 11


def test_offset_range(kafka_bootstrap: str, topic_prefix: str) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge)
    events = list(
        read_events(kafka_bootstrap, [f"{topic_prefix}.mempool"], start_offset=5, end_offset=15)
    )
    assert [e.offset for e in events] == list(range(5, 15))


def test_each_stream_comes_back_in_seq_order(kafka_bootstrap: str, topic_prefix: str) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for seq in (2, 1, 3, 5, 4, 6):  # committed out of order by two CPUs
        session.event(ADDED, seq=seq)
    forge.flush()
    topics = [f"{topic_prefix}.mempool"]
    assert [e.seq for e in read_events(kafka_bootstrap, topics)] == [1, 2, 3, 4, 5, 6]
    raw = [e.seq for e in read_events(kafka_bootstrap, topics, ordered=False)]
    assert raw == [2, 1, 3, 5, 4, 6]


def test_jsonl_csv_and_parquet_outputs(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge)
    base = ["-b", kafka_bootstrap, "--prefix", topic_prefix, "--node", "node-a"]

    run([*base, "--stream", "mempool", "-o", str(tmp_path / "out.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 35
    first = lines[0]
    assert first["record"] == "tracebridge.mempool.Added"
    assert first["envelope"]["seq"] == 1
    assert first["fields"]["txid"] == bytes.fromhex(first["fields"]["txid"]).hex()

    run([*base, "--stream", ADDED, "--format", "csv", "-o", str(tmp_path / "out.csv")])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert len(rows) == 30
    assert rows[0]["node_id"] == "node-a"
    assert rows[0]["seq"] == "1"
    assert len(rows[0]["txid"]) == 64

    pq = pytest.importorskip("pyarrow.parquet")
    run([*base, "--stream", "net", "--format", "parquet", "-o", str(tmp_path / "out.parquet")])
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 5
    assert table.column("stream").to_pylist() == [INBOUND] * 5
    assert table.column("msg").to_pylist()[0] == bytes([1]) * 16
    assert table.schema.field("seq").type == "int64"


def test_merge_interleaves_nodes_by_event_time(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    a = forge.session("node-a")
    b = forge.session("node-b")
    for i in range(10):  # a at even seconds, b at odd ones; a's all produced first
        a.event(ADDED, ktime_ns=2 * i * 10**9)
    for i in range(10):
        b.event(ADDED, ktime_ns=(2 * i + 1) * 10**9)
    forge.flush()
    result = run(["-b", kafka_bootstrap, "--prefix", topic_prefix, "--merge"])
    merged = [json.loads(line)["envelope"] for line in result.stdout.splitlines()]
    assert [e["node_id"] for e in merged] == ["node-a", "node-b"] * 10
    times = [e["ts_wall_ns"] for e in merged]
    assert times == sorted(times)


def test_gap_report_says_what_accounts_for_each_gap(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(5):
        session.event(ADDED)
    session.event(ADDED, lost_before=2)
    session.event(ADDED, produce=False)
    for _ in range(3):
        session.event(ADDED)
    session.heartbeat()
    forge.flush()
    result = run(["-b", kafka_bootstrap, "--prefix", topic_prefix, "-o", "/dev/null"])
    assert "gap seq 6..7 (2): lost_before" in result.stderr
    assert "gap seq 9 (1): producer" in result.stderr
    assert "0 unexplained (SESSION_END ledger)" in result.stderr


def test_republish_keeps_the_envelope_and_adds_a_replayed_header(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge)
    run(["-b", kafka_bootstrap, "--prefix", topic_prefix, "--node", "node-a", "--republish"])
    copy_prefix = f"{topic_prefix}.replay"
    originals = raw_messages(kafka_bootstrap, f"{topic_prefix}.mempool")
    copies = raw_messages(kafka_bootstrap, f"{copy_prefix}.mempool")
    a_originals = [m for m in originals if m["key"] == b"node-a"]
    assert [m["value"] for m in copies] == [m["value"] for m in a_originals]
    for original, copy in zip(a_originals, copies, strict=True):
        assert copy["timestamp"] == original["timestamp"]
        assert copy["headers"]["replayed"] == (
            f"{topic_prefix}.mempool/0/{original['offset']}".encode()
        )
    # the copy carries node-a's ledger too, so it can be audited like the original
    report = read_audit(kafka_bootstrap, copy_prefix).judge()
    assert report.ok
    assert {s.key[0] for s in report.streams} == {"node-a"}
    events = list(read_events(kafka_bootstrap, [f"{copy_prefix}.mempool"], streams=[ADDED]))
    assert [e.seq for e in events] == list(range(1, 31))


def raw_messages(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "t", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    while True:
        message = consumer.poll(10)
        assert message is not None
        if message.error():
            break
        out.append(
            {
                "value": message.value(),
                "key": message.key(),
                "offset": message.offset(),
                "timestamp": message.timestamp()[1],
                "headers": dict(message.headers() or []),
            }
        )
    consumer.close()
    return out


class FakeRegistry:
    """Answers schema ids like a registry holding the committed schemas."""

    def __init__(self, ids: dict[int, str]) -> None:
        self.texts = {
            schema_id: json.dumps(committed_schemas().by_name(name).definition)
            for schema_id, name in ids.items()
        }

    def fetch_schema(self, schema_id: int) -> str:
        return self.texts[schema_id]


def test_both_framings_in_one_topic_are_detected_per_record(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A bridge switched to registry mode mid-stream: single-object, then Confluent."""
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    store = committed_schemas()
    known = store.by_name("tracebridge.mempool.Added")
    for i in range(6):
        value = session.event(ADDED, produce=i < 3)
        if i >= 3:  # re-frame: 00 + schema id 42 + the same Avro body
            body = value[10:]
            record = fastavro.schemaless_reader(io.BytesIO(body), known.parsed, None)
            assert isinstance(record, dict)
            framed = b"\x00" + (42).to_bytes(4, "big") + body
            forge.produce(f"{topic_prefix}.mempool", framed, b"node-a")
    forge.flush()
    registry_store = store.with_resolver(FakeRegistry({42: "tracebridge.mempool.Added"}))
    stats = ReadStats()
    events = list(
        read_events(kafka_bootstrap, [f"{topic_prefix}.mempool"], store=registry_store, stats=stats)
    )
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert stats.undecodable == 0
    without = ReadStats()
    assert len(list(read_events(kafka_bootstrap, [f"{topic_prefix}.mempool"], stats=without))) == 3
    assert without.undecodable == 3


def test_missing_topics_are_reported_not_fatal(kafka_bootstrap: str, topic_prefix: str) -> None:
    create_topics(kafka_bootstrap, prefix_topics(topic_prefix)[:1])
    stats = ReadStats()
    assert list(read_events(kafka_bootstrap, [f"{topic_prefix}.nothing"], stats=stats)) == []
    assert stats.missing_topics == [f"{topic_prefix}.nothing"]
