"""Delivery latency buckets, and the sink's callback that fills them."""

from __future__ import annotations

import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError

from bridge.config import KafkaConfig
from bridge.metrics.latency import BOUNDS_MS, LatencyBuckets
from bridge.sinks.kafka.producer import KafkaSink, Route


class Acked:
    """What the delivery callback reads of a message: its (event time) timestamp."""

    def __init__(self, ts_ms: int) -> None:
        self.ts_ms = ts_ms

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self.ts_ms


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_buckets_count_each_latency_once_at_its_upper_bound() -> None:
    buckets = LatencyBuckets()
    buckets.observe_ms(now_ms() + 60_000)  # the clock stepped back: 0 ms
    buckets.observe_ms(now_ms() - 200)
    buckets.observe_ms(now_ms() - 10 * 60_000)
    counts, _ = buckets.snapshot()
    assert sum(counts) == 3
    assert counts[0] == 1
    assert counts[BOUNDS_MS.index(250)] == 1
    assert counts[-1] == 1  # above the largest bound: +Inf


def test_the_sinks_callback_observes_every_acknowledged_record_and_no_failed_one() -> None:
    sink = KafkaSink(KafkaConfig(bootstrap_servers="127.0.0.1:1"), b"n", 1_000_000)
    try:
        sink.latency = LatencyBuckets()
        sink.start_session({7: Route("t", None, 7)}, lambda *_: None)
        callback = sink._callbacks[7]
        assert callback is not None
        callback(None, Acked(now_ms() - 30))  # type: ignore[arg-type]
        callback(None, Acked(now_ms() - 3_000))  # type: ignore[arg-type]
        callback(KafkaError(KafkaError._MSG_TIMED_OUT), Acked(now_ms()))  # type: ignore[arg-type]
        counts, sum_ms = sink.latency.snapshot()
        assert sum(counts) == sink.acked[7] == 2
        assert counts[BOUNDS_MS.index(50)] == 1
        assert counts[BOUNDS_MS.index(5_000)] == 1
        assert 3_030 <= sum_ms < 3_030 + 1_000
        assert sink.failed[7] == 1
    finally:
        sink.close(0)


def test_without_metrics_the_callback_is_the_plain_one() -> None:
    sink = KafkaSink(KafkaConfig(bootstrap_servers="127.0.0.1:1"), b"n", 1_000_000)
    try:
        sink.start_session({7: Route("t", None, 7)}, lambda *_: None)
        callback = sink._callbacks[7]
        assert callback is not None
        callback(None, Acked(now_ms()))  # type: ignore[arg-type]
        assert sink.acked[7] == 1
        assert sink.latency is None
    finally:
        sink.close(0)


def test_the_cost_benchmark_runs_and_counts_every_call() -> None:
    from bridge.bench.delivery_callback import measure

    figures = measure(calls=2_000, rounds=1)  # asserts the histogram saw every call
    assert figures["with_latency_us"] > 0
    assert figures["callback_us"] > 0
