"""The native producer against a real broker: what it counts is what Kafka holds.

Every test produces through :class:`KafkaSink` (librdkafka driven from C) and then
reads the topic back with an ordinary consumer, so the per-stream counters, the
headers, keys and timestamps, and every failure path are judged by the broker, not by
the producer's own word.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.config import KafkaConfig
from bridge.errors import KafkaSetupError
from bridge.events.envelope import LossStage
from bridge.localkafka.broker import LocalBroker
from bridge.metrics.latency import BOUNDS_MS, LatencyBuckets
from bridge.sinks.kafka.producer import Headers, KafkaSink, Route

pytestmark = [pytest.mark.kafka]

KEY = b"node-a"
HEADERS: Headers = [
    ("stability", b"stable"),
    ("schema_fp", b"0123456789abcdef"),
    ("node", "node-a"),
]

Loss = tuple[int, int, int, bool]


def create(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        future.result(30)


Record = tuple[bytes | None, bytes | None, int, list[tuple[str, bytes]]]


def read_all(bootstrap: str, topic: str) -> list[Record]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False}
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[Record] = []
        deadline = time.monotonic() + 60
        while len(out) < high and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                assert message.error() is None, message.error()
                headers = cast(list[tuple[str, bytes]], message.headers() or [])
                key, value = message.key(), message.value()
                out.append((key, value, message.timestamp()[1], headers))
        return out
    finally:
        consumer.close()


@pytest.fixture
def losses() -> list[Loss]:
    return []


@pytest.fixture
def sink(kafka_bootstrap: str, losses: list[Loss]) -> Iterator[KafkaSink]:
    made = KafkaSink(KafkaConfig(bootstrap_servers=kafka_bootstrap), KEY, 1_000_000)
    try:
        yield made
    finally:
        made.close(10)


def test_every_record_arrives_with_its_route_headers_key_and_time(
    sink: KafkaSink, kafka_bootstrap: str, topic_prefix: str, losses: list[Loss]
) -> None:
    plain, headed = f"{topic_prefix}.plain", f"{topic_prefix}.headed"
    create(kafka_bootstrap, plain, headed)
    sink.start_session(
        {3: Route(headed, HEADERS, 30), 200: Route(plain, None, 31)}, lambda *a: losses.append(a)
    )
    base_ms = time.time_ns() // 1_000_000 - 1_000
    batch = [(3 if i % 3 else 200, b"value-%d" % i, base_ms + i) for i in range(30_000)]
    assert sink.produce_events(batch) == len(batch)
    assert sink.flush(30) == 0

    assert sink.produced[3] == sink.acked[3] == 20_000
    assert sink.produced[200] == sink.acked[200] == 10_000
    assert sink.failed[3] == sink.failed[200] == 0
    assert losses == []
    headed_records = read_all(kafka_bootstrap, headed)
    expected = [(v, ts) for tp, v, ts in batch if tp == 3]
    assert [(value, ts) for _, value, ts, _ in headed_records] == expected
    assert {key for key, *_ in headed_records} == {KEY}
    as_bytes = [
        (name, value.encode() if isinstance(value, str) else value) for name, value in HEADERS
    ]
    assert all(headers == as_bytes for *_, headers in headed_records)
    plain_records = read_all(kafka_bootstrap, plain)
    assert [value for _, value, _, _ in plain_records] == [v for tp, v, _ in batch if tp == 200]
    assert all(headers == [] for *_, headers in plain_records)


def test_a_new_session_starts_from_zero(
    sink: KafkaSink, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.t"
    create(kafka_bootstrap, topic)
    sink.start_session({5: Route(topic, None, 1)}, lambda *_: None)
    sink.produce_events([(5, b"x", 0)] * 10)
    assert sink.flush(30) == 0
    sink.start_session({5: Route(topic, HEADERS, 1)}, lambda *_: None)
    assert (sink.produced[5], sink.acked[5]) == (0, 0)
    sink.produce_events([(5, b"y", 0)] * 3)
    assert sink.flush(30) == 0
    assert (sink.produced[5], sink.acked[5]) == (3, 3)
    assert len(read_all(kafka_bootstrap, topic)) == 13


def test_latency_is_observed_for_every_acknowledged_record_by_the_buckets_rule(
    sink: KafkaSink, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.t"
    create(kafka_bootstrap, topic)
    sink.latency = LatencyBuckets()
    sink.start_session({7: Route(topic, None, 1)}, lambda *_: None)
    now_ms = time.time_ns() // 1_000_000
    # Event times 3 s, 40 s and 10 min old, and one in the future (the clock stepped).
    batch = [(7, b"a", now_ms - 3_000), (7, b"b", now_ms - 40_000), (7, b"c", now_ms - 600_000)]
    batch.append((7, b"d", now_ms + 60_000))
    sink.produce_events(batch)
    assert sink.flush(30) == 0
    counts, sum_ms = sink.latency.snapshot()
    assert sum(counts) == sink.acked[7] == 4
    assert counts[BOUNDS_MS.index(5_000)] == 1
    assert counts[BOUNDS_MS.index(60_000)] == 1
    assert counts[-1] == 1  # above the largest bound
    assert counts[0] == 1  # negative: 0 ms
    assert 643_000 <= sum_ms < 643_000 + 30_000


def test_records_kafka_does_not_take_are_counted_per_stream_as_producer_losses(
    kafka_bootstrap: str, topic_prefix: str, losses: list[Loss]
) -> None:
    """Unknown topic (the broker does not create topics here): every record fails
    after queueing, and is reported once, as a producer loss of its stream."""
    config = KafkaConfig(
        bootstrap_servers=kafka_bootstrap,
        message_timeout_ms=3_000,
        librdkafka={"allow.auto.create.topics": "false"},
    )
    sink = KafkaSink(config, KEY, 1_000_000)
    try:
        sink.start_session(
            {
                1: Route(f"{topic_prefix}.missing", HEADERS, 11),
                2: Route(f"{topic_prefix}.gone", None, 12),
            },
            lambda *a: losses.append(a),
        )
        sink.produce_events([(1, b"x", 0)] * 5 + [(2, b"y", 0)] * 2)
        sink.flush(20)
        assert sink.failed[1] == 5
        assert sink.failed[2] == 2
        assert sink.acked[1] == sink.acked[2] == 0
        stage = int(LossStage.PRODUCER)
        by_sequence: dict[int, int] = {}
        for sequence, reported_stage, count, in_next in losses:
            assert reported_stage == stage
            assert in_next is False
            by_sequence[sequence] = by_sequence.get(sequence, 0) + count
        assert by_sequence == {11: 5, 12: 2}
    finally:
        sink.close(0)


def test_a_record_refused_before_queueing_is_a_loss_and_the_rest_still_go(
    kafka_bootstrap: str, topic_prefix: str, losses: list[Loss]
) -> None:
    topic = f"{topic_prefix}.t"
    create(kafka_bootstrap, topic)
    sink = KafkaSink(KafkaConfig(bootstrap_servers=kafka_bootstrap), KEY, 2_000)
    try:
        sink.start_session({4: Route(topic, None, 21)}, lambda *a: losses.append(a))
        handed = sink.produce_events([(4, b"small", 0), (4, b"x" * 10_000, 0), (4, b"small", 0)])
        assert handed == 3  # the refused one is handed back as a loss, not retried
        assert sink.flush(30) == 0
        assert losses == [(21, int(LossStage.PRODUCER), 1, True)]
        assert sink.produced[4] == sink.acked[4] == 2
        assert [v for _, v, _, _ in read_all(kafka_bootstrap, topic)] == [b"small", b"small"]
    finally:
        sink.close(0)


def test_a_queue_that_stays_full_hands_back_the_rest_of_the_batch(topic_prefix: str) -> None:
    """No broker at all and a 1,000-record queue: 1,000 go in, the wait is bounded by
    queue_full_timeout_ms, and purging what was never sent counts it as failed."""
    config = KafkaConfig(
        bootstrap_servers="127.0.0.1:1",
        queue_max_messages=1_000,
        queue_full_timeout_ms=200,
    )
    sink = KafkaSink(config, KEY, 1_000_000)
    try:
        reported: list[Loss] = []
        sink.start_session({9: Route(f"{topic_prefix}.t", None, 5)}, lambda *a: reported.append(a))
        started = time.monotonic()
        assert sink.produce_events([(9, b"v", 0)] * 1_500) == 1_000
        assert 0.15 <= time.monotonic() - started < 5
        assert sink.produced[9] == 1_000
        sink.purge()
        assert sink.failed[9] == 1_000
        assert sum(count for _, _, count, _ in reported) == 1_000
    finally:
        sink.close(0)


def test_bridge_records_are_delivered_and_their_failures_counted(
    sink: KafkaSink, kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"{topic_prefix}.bridge"
    create(kafka_bootstrap, topic)
    sink.produce_bridge_record(topic, b"heartbeat", [("kind", b"heartbeat")])
    assert sink.flush(30) == 0
    [(key, value, timestamp_ms, headers)] = read_all(kafka_bootstrap, topic)
    assert (key, value, headers) == (KEY, b"heartbeat", [("kind", b"heartbeat")])
    assert abs(timestamp_ms - time.time() * 1000) < 60_000
    assert sink.bridge_records_failed == 0


def test_librdkafka_log_lines_and_client_errors_reach_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no broker listening, librdkafka's connection errors arrive through the
    error callback and its log lines through the ``librdkafka`` logger, in the thread
    that polls (never from librdkafka's own threads)."""
    sink = KafkaSink(KafkaConfig(bootstrap_servers="127.0.0.1:1"), KEY, 1_000_000)
    try:
        with caplog.at_level(logging.DEBUG):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (
                any(r.name == "librdkafka" for r in caplog.records)
                and any("Kafka client error" in r.getMessage() for r in caplog.records)
            ):
                sink.poll(0.2)
        assert any(
            r.name == "librdkafka" and "rdkafka#producer" in r.getMessage() for r in caplog.records
        )
        assert any("Kafka client error" in r.getMessage() for r in caplog.records)
    finally:
        sink.close(0)


def test_a_setting_librdkafka_refuses_is_one_clear_error() -> None:
    config = KafkaConfig(bootstrap_servers="127.0.0.1:1", librdkafka={"no.such.setting": "1"})
    with pytest.raises(KafkaSetupError, match=r"No such configuration property.*no\.such\.setting"):
        KafkaSink(config, KEY, 1_000_000)


def test_a_closed_producer_says_so() -> None:
    sink = KafkaSink(KafkaConfig(bootstrap_servers="127.0.0.1:1"), KEY, 1_000_000)
    sink.close(0)
    with pytest.raises(RuntimeError, match="closed"):
        sink.produce_events([(1, b"x", 0)])
    assert sink.in_flight() == 0


def test_records_that_time_out_after_they_were_sent_are_in_doubt_not_lost(
    tmp_path: Path, topic_prefix: str, losses: list[Loss]
) -> None:
    """The broker freezes (SIGSTOP) with a produce request in its socket: the records
    time out in the producer, but the broker writes them once it runs again. Counting
    them lost would be a false claim, so they are in doubt (librdkafka: possibly
    persisted), not producer losses; the topic then holds acked + some of them."""
    broker = LocalBroker(tmp_path / "kafka", port=0)
    broker.start()
    try:
        bootstrap = broker.bootstrap_servers
        topic = f"{topic_prefix}.frozen"
        create(bootstrap, topic)
        config = KafkaConfig(bootstrap_servers=bootstrap, message_timeout_ms=2_000, linger_ms=0)
        sink = KafkaSink(config, KEY, 1_000_000)
        try:
            sink.start_session({9: Route(topic, None, 41)}, lambda *a: losses.append(a))
            sink.produce_events([(9, b"before", 0)] * 10)
            assert sink.flush(30) == 0
            assert sink.acked[9] == 10
            pid = broker.status().pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                sink.produce_events([(9, b"frozen", 0)] * 5)
                deadline = time.monotonic() + 30
                while sink.in_doubt[9] + sink.failed[9] < 5 and time.monotonic() < deadline:
                    sink.poll(0.2)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert (sink.in_doubt[9], sink.failed[9], sink.acked[9]) == (5, 0, 10)
            assert losses == []  # nothing claimed lost
            sink.produce_events([(9, b"after", 0)] * 3)  # the producer carries on
            assert sink.flush(60) == 0
            assert sink.acked[9] == 13
        finally:
            sink.close(10)
        values = [value for _, value, _, _ in read_all(bootstrap, topic)]
        assert values.count(b"before") == 10
        assert values.count(b"after") == 3
        assert values.count(b"frozen") <= 5
    finally:
        broker.stop()


def test_a_periodic_heartbeat_is_skipped_not_waited_for_when_the_queue_is_full(
    topic_prefix: str,
) -> None:
    """The drain loop produces heartbeats: with the queue full (here: no broker at
    all), a periodic one is skipped at once and counted, instead of holding the loop
    while the rings fill; a record that must go (SESSION_END, dead letters) still gets
    its bounded wait before it is counted as failed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    config = KafkaConfig(bootstrap_servers=closed, queue_max_messages=1000)
    sink = KafkaSink(config, KEY, 1_000_000)
    try:
        sink.start_session({6: Route(f"{topic_prefix}.t", None, 1)}, lambda *_: None)
        assert sink.produce_events([(6, b"x", 0)] * 1000) == 1000  # the queue is full
        bridge = f"{topic_prefix}.bridge"
        assert sink.produce_bridge_record(bridge, b"beat", [], droppable=True) is False
        assert (sink.bridge_records_skipped, sink.bridge_records_failed) == (1, 0)
        assert sink.produce_bridge_record(bridge, b"end", []) is False
        assert (sink.bridge_records_skipped, sink.bridge_records_failed) == (1, 1)
        assert sink.produced[6] == 1000
        sink.purge()
    finally:
        sink.close(0)
