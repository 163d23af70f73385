"""What observing delivery latency adds to each record: the Kafka sink's delivery
callback timed with and without the histogram (metrics on or off).

librdkafka calls the callback once per acknowledged record from ``poll()``; the call
itself (C into Python) is the same either way, so the difference between the two
callbacks, called here directly with a real ``confluent_kafka.Message``, is the whole
per-record cost of the histogram. Run: ``python -m bridge.bench.delivery_callback``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, Message

from bridge.config import KafkaConfig
from bridge.metrics.latency import LatencyBuckets
from bridge.sinks.kafka.producer import KafkaSink, Route

TP_ID = 1


def _callback(latency: LatencyBuckets | None) -> tuple[Callable[..., None], KafkaSink]:
    # No broker is needed: nothing is produced, the callback is only built and called.
    sink = KafkaSink(KafkaConfig(bootstrap_servers="127.0.0.1:1"), b"n", 1_000_000)
    sink.latency = latency
    sink.start_session({TP_ID: Route("t", None, TP_ID)}, lambda *_: None)
    callback = sink._callbacks[TP_ID]
    assert callback is not None
    return callback, sink


def _per_call_us(callback: Callable[[KafkaError | None, Message], None], calls: int) -> float:
    message = Message(
        topic="t", value=b"x", timestamp=(TIMESTAMP_CREATE_TIME, time.time_ns() // 1_000_000)
    )
    started = time.perf_counter()
    for _ in range(calls):
        callback(None, message)
    return (time.perf_counter() - started) / calls * 1e6


def measure(calls: int = 2_000_000, rounds: int = 5) -> dict[str, float]:
    """Best of ``rounds`` (the least disturbed), in µs per call, for both callbacks."""
    latency = LatencyBuckets()
    plain, plain_sink = _callback(None)
    timed, timed_sink = _callback(latency)
    try:
        best_plain = min(_per_call_us(plain, calls) for _ in range(rounds))
        best_timed = min(_per_call_us(timed, calls) for _ in range(rounds))
    finally:
        plain_sink.close(0)
        timed_sink.close(0)
    assert sum(latency.counts) == calls * rounds == timed_sink.acked[TP_ID]
    return {
        "callback_us": best_plain,
        "with_latency_us": best_timed,
        "added_us": best_timed - best_plain,
    }


if __name__ == "__main__":
    figures = measure()
    print(
        f"delivery callback {figures['callback_us']:.3f} µs/record; with the latency "
        f"histogram {figures['with_latency_us']:.3f} µs; added {figures['added_us']:.3f} µs"
    )
