"""Delivery latency buckets: the rule the native producer's delivery report follows.

That the producer observes every acknowledged record by this rule, against a real
broker, is in tests/kafka/test_native_producer.py.
"""

from __future__ import annotations

import time

from bridge.metrics.latency import BOUNDS_MS, LatencyBuckets


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


def test_a_latency_equal_to_a_bound_is_counted_in_that_bucket() -> None:
    buckets = LatencyBuckets()
    buckets.observe_ms(now_ms() - 5_000 + 1)  # 4,999-5,000 ms, whatever ms passes next
    counts, _ = buckets.snapshot()
    assert counts[BOUNDS_MS.index(5_000)] == 1


def test_buckets_read_from_a_reader_once_given_one() -> None:
    buckets = LatencyBuckets()
    figures = ([1] * (len(BOUNDS_MS) + 1), 42)
    buckets.read_from(lambda: figures)
    assert buckets.snapshot() == figures
