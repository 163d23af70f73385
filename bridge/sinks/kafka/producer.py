"""The Kafka producer: event records in, delivery reports back into the ledger.

Per-record Python work is one ``produce()`` call; the values arrive already encoded
from the native encoder. Every stream has a route (topic, constant headers, a delivery
callback bound to its counters) built once per session, so the loop looks nothing up.

Backpressure: when librdkafka's queue is full, ``produce()`` raises ``BufferError``.
The sink then serves delivery reports and retries for up to ``queue_full_timeout_ms``;
past that it gives up on the rest of the batch and reports how far it got, so the
caller counts those records as lost (stage ``bridge``) instead of letting the rings
overflow unnoticed behind a stalled drain loop.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import time_ns

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from bridge.codec import _native
from bridge.config import KafkaConfig
from bridge.events.envelope import LossStage
from bridge.metrics.latency import LatencyBuckets
from bridge.sinks.kafka.client_log import ClientLog
from bridge.sinks.kafka.security import client_security, new_client

log = logging.getLogger(__name__)

MAX_STREAMS = 256  # tp_id range of the native encoder

# Producer-stage losses are reported through this (the encoder's add_loss).
LossReporter = Callable[[int, int, int, bool], None]


Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class Route:
    """Where one record type's records go, and which sequence counts their losses."""

    topic: str
    headers: Headers | None  # None: kafka.event_headers is off
    sequence: int


def producer_config(config: KafkaConfig, message_max_bytes: int) -> dict[str, str | int | float]:
    """librdkafka settings: exactly-once-per-partition writes, batched and compressed."""
    conf: dict[str, str | int | float] = {
        "bootstrap.servers": config.bootstrap_servers or "",
        "enable.idempotence": True,  # acks=all, ordered, no duplicates on retry
        "acks": "all",
        "compression.type": config.compression,
        "linger.ms": config.linger_ms,
        "batch.num.messages": 100_000,  # let batch.size (bytes) be the limit for small records
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": config.queue_max_messages,
        "queue.buffering.max.kbytes": 1_048_576,  # 1 GiB, librdkafka's default
        "message.timeout.ms": config.message_timeout_ms,
        "message.max.bytes": message_max_bytes,
        "partitioner": "murmur2_random",  # same key -> partition mapping as Java clients
        **client_security(config),
    }
    conf.update(config.librdkafka)
    return conf


class KafkaSink:
    """Owns the producer and the per-stream produce/ack/fail counters."""

    def __init__(self, config: KafkaConfig, key: bytes, message_max_bytes: int) -> None:
        self.config = config
        self.key = key
        # Through logging, not librdkafka's raw stderr lines; hushed by close() if no
        # session ever started (then the startup check has said why Kafka refused us).
        self._client_log = ClientLog()
        conf = {
            **producer_config(config, message_max_bytes),
            "error_cb": self._on_client_error,
            "logger": self._client_log,
        }
        self._producer = new_client(lambda: Producer(conf))
        self.produced = [0] * MAX_STREAMS
        self.acked = [0] * MAX_STREAMS
        self.failed = [0] * MAX_STREAMS
        self._routes: list[Route | None] = [None] * MAX_STREAMS
        self._callbacks: list[Callable[[KafkaError | None, Message], None] | None] = [
            None
        ] * MAX_STREAMS
        self._report_loss: LossReporter | None = None
        self._carried = False  # a session started: records may be queued
        self.bridge_records_failed = 0
        self._last_error_log = 0.0
        # Set (before a session starts) to observe each record's delivery latency.
        self.latency: LatencyBuckets | None = None

    # ---------------------------------------------------------------- session
    def start_session(self, routes: dict[int, Route], report_loss: LossReporter) -> None:
        """New routes and zeroed counters; the previous session must have been flushed."""
        self._carried = True
        self._report_loss = report_loss
        self.produced = [0] * MAX_STREAMS
        self.acked = [0] * MAX_STREAMS
        self.failed = [0] * MAX_STREAMS
        self._routes = [None] * MAX_STREAMS
        self._callbacks = [None] * MAX_STREAMS
        for tp_id, route in routes.items():
            self._routes[tp_id] = route
            self._callbacks[tp_id] = self._delivery_callback(tp_id)

    def _delivery_callback(self, tp_id: int) -> Callable[[KafkaError | None, Message], None]:
        acked = self.acked
        if self.latency is not None:
            return self._timed_delivery_callback(tp_id, self.latency)

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                acked[tp_id] += 1
            else:
                self._failed(tp_id, error)

        return on_delivery

    def _timed_delivery_callback(
        self, tp_id: int, latency: LatencyBuckets
    ) -> Callable[[KafkaError | None, Message], None]:
        """The callback with the delivery latency observed (metrics on): the body of
        :meth:`LatencyBuckets.observe_ms` inlined, every name bound in the closure."""
        acked, bounds, counts, sum_ms = self.acked, latency.bounds, latency.counts, latency.sum_ms

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                acked[tp_id] += 1
                elapsed = time_ns() // 1_000_000 - message.timestamp()[1]
                if elapsed < 0:  # the wall clock stepped back
                    elapsed = 0
                counts[bisect_left(bounds, elapsed)] += 1
                sum_ms[0] += elapsed
            else:
                self._failed(tp_id, error)

        return on_delivery

    def _failed(self, tp_id: int, error: KafkaError) -> None:
        self.failed[tp_id] += 1
        route = self._routes[tp_id]
        if self._report_loss is not None and route is not None:
            self._report_loss(route.sequence, LossStage.PRODUCER, 1, False)
        self._log_limited("Kafka did not accept a record (counted as a producer loss): %s.", error)

    # ---------------------------------------------------------------- events
    def produce_events(self, batch: Sequence[_native.Encoded]) -> int:
        """Produce a drained batch; return how many were handed over (all, unless the
        queue stayed full past queue_full_timeout_ms)."""
        produce = self._producer.produce
        routes, callbacks, produced, key = self._routes, self._callbacks, self.produced, self.key
        for index, (tp_id, value, ts_ms) in enumerate(batch):
            route = routes[tp_id]
            assert route is not None, f"no route for stream {tp_id}"
            deadline = 0.0
            while True:
                try:
                    produce(
                        route.topic,
                        value,
                        key,
                        on_delivery=callbacks[tp_id],
                        timestamp=ts_ms,
                        headers=route.headers,
                    )
                    produced[tp_id] += 1
                    break
                except BufferError:
                    now = time.monotonic()
                    if not deadline:
                        deadline = now + self.config.queue_full_timeout_ms / 1000
                    elif now >= deadline:
                        self._log_limited(
                            "Kafka producer queue stayed full for %s ms; dropping the rest of "
                            "the batch (counted as bridge losses).",
                            self.config.queue_full_timeout_ms,
                        )
                        return index
                    self._producer.poll(0.005)  # serve delivery reports: frees queue slots
                except KafkaException as error:  # refused before queueing, e.g. too large
                    if self._report_loss is not None:
                        self._report_loss(route.sequence, LossStage.PRODUCER, 1, True)
                    self._log_limited(
                        "Kafka refused a record (counted as a producer loss): %s.", error
                    )
                    break
        self._producer.poll(0)
        return len(batch)

    # ---------------------------------------------------------------- bridge's own records
    def produce_bridge_record(self, topic: str, value: bytes, headers: Headers) -> None:
        """Heartbeats and dead letters: low rate, produced with a bounded wait if full."""
        for _ in range(2):
            try:
                self._producer.produce(
                    topic,
                    value,
                    self.key,
                    on_delivery=self._bridge_record_delivered,
                    headers=headers,
                )
                return
            except BufferError:
                self._producer.poll(1.0)
        self.bridge_records_failed += 1
        log.error("Could not queue a record for %s: the producer queue is full.", topic)

    def _bridge_record_delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.bridge_records_failed += 1
            log.error("A bridge record for %s was not delivered: %s.", message.topic(), error)

    # ---------------------------------------------------------------- lifecycle
    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def purge(self) -> None:
        """Drop what was never sent (definitely not delivered: counted as producer
        losses through the delivery reports). Records already sent are left to settle,
        because the broker may have written them."""
        self._producer.purge(in_queue=True, in_flight=False, blocking=True)
        self._producer.poll(0)

    def in_flight(self) -> int:
        return len(self._producer)

    def flush(self, timeout_s: float) -> int:
        """Wait for every queued record to be acked or to fail; return how many remain."""
        return int(self._producer.flush(timeout_s))

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is left and release the client's threads and sockets."""
        if not self._carried:
            self._client_log.hushed = True  # nothing to deliver; see __init__
        remaining = self.flush(timeout_s)
        if remaining:
            log.error("%d records were still undelivered when the producer closed.", remaining)
        self._producer.close()

    def _on_client_error(self, error: KafkaError) -> None:
        if self._client_log.hushed:
            log.debug("Kafka client error while closing unused: %s.", error)
        elif error.fatal():
            log.error("Fatal Kafka producer error: %s.", error)
        else:
            self._log_limited("Kafka client error (will retry): %s.", error)

    def _log_limited(self, message: str, *args: object) -> None:
        """At most one such line every 5 s: a broker outage must not flood the log."""
        now = time.monotonic()
        if now - self._last_error_log >= 5.0:
            self._last_error_log = now
            log.error(message, *args)
