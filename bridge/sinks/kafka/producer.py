"""The Kafka producer: event records in, delivery reports back into the ledger.

There is no per-record Python: the values arrive already encoded from the native
encoder, and a drained batch is handed to the native producer (``_producer.c``) in one
call, which produces each record through librdkafka with its route's prebuilt headers
and counts delivery reports per stream in C. Every stream has a route (topic, constant
headers) built once per session. Python sees a record again only when it failed: the
failures of a poll arrive together, per stream, and are counted as producer losses,
except those that timed out after they were sent, which Kafka may have written: those
are counted *in doubt*, since only a reader of the topic can tell (README, "Envelope
and loss semantics").

Backpressure: when librdkafka's queue is full, ``produce()`` raises ``BufferError``.
The sink then serves delivery reports and retries for up to ``queue_full_timeout_ms``;
past that it gives up on the rest of the batch and reports how far it got, so the
caller counts those records as lost (stage ``bridge``) instead of letting the rings
overflow unnoticed behind a stalled drain loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from confluent_kafka import KafkaError

from bridge.codec import _native
from bridge.config import KafkaConfig
from bridge.errors import KafkaSetupError
from bridge.events.envelope import LossStage
from bridge.metrics.latency import LatencyBuckets
from bridge.sinks.kafka import _producer, librdkafka
from bridge.sinks.kafka.client_log import ClientLog
from bridge.sinks.kafka.security import client_security

log = logging.getLogger(__name__)

MAX_STREAMS = _producer.MAX_STREAMS  # tp_id range of the native encoder
# librdkafka's syslog levels as logging's, as confluent-kafka maps them.
_LOG_LEVELS = (50, 50, 50, 40, 30, 20, 20, 10)

# Producer-stage losses are reported through this (the encoder's add_loss).
LossReporter = Callable[[int, int, int, bool], None]


Headers = list[tuple[str, str | bytes | None]]


class DeliveryCounts(NamedTuple):
    """Per stream (tp_id, MAX_STREAMS entries each), what became of the records handed
    to librdkafka this session."""

    produced: list[int]
    acked: list[int]
    failed: list[int]  # failed, and librdkafka knows Kafka did not write it: a loss
    in_doubt: list[int]  # timed out after it was sent: a reader of the topic settles it


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


def librdkafka_settings(conf: Mapping[str, object]) -> list[tuple[str, str]]:
    """librdkafka's string form of each setting (booleans as true/false)."""
    out = []
    for name, value in conf.items():
        if isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, str(value)))
    return out


class KafkaSink:
    """Owns the producer and the per-stream produce/ack/fail counters."""

    def __init__(self, config: KafkaConfig, key: bytes, message_max_bytes: int) -> None:
        self.config = config
        self.key = key
        # Through logging, not librdkafka's raw stderr lines; hushed by close() if no
        # session ever started (then the startup check has said why Kafka refused us).
        self._client_log = ClientLog()
        librdkafka.load()
        try:
            self._producer = _producer.Producer(
                librdkafka_settings(producer_config(config, message_max_bytes)),
                on_log=self._on_log,
                on_error=self._on_client_error,
                on_failures=self._on_failures,
                on_bridge_failure=self._on_bridge_failure,
            )
        except ValueError as error:  # librdkafka's words for a refused setting
            raise KafkaSetupError(
                f"The Kafka client settings were refused: {error} "
                "(check kafka.tls and kafka.librdkafka)"
            ) from None
        self._routes: list[Route | None] = [None] * MAX_STREAMS
        self._report_loss: LossReporter | None = None
        self._carried = False  # a session started: records may be queued
        self.bridge_records_failed = 0
        self.bridge_records_skipped = 0  # periodic heartbeats not queued: queue full
        self._last_error_log = 0.0
        self._latency: LatencyBuckets | None = None

    # ---------------------------------------------------------------- counters
    def counts(self) -> DeliveryCounts:
        """Every per-stream counter of this session, from one native read."""
        return DeliveryCounts(*self._producer.counts())

    @property
    def produced(self) -> list[int]:
        return self.counts().produced

    @property
    def acked(self) -> list[int]:
        return self.counts().acked

    @property
    def failed(self) -> list[int]:
        return self.counts().failed

    @property
    def in_doubt(self) -> list[int]:
        return self.counts().in_doubt

    @property
    def latency(self) -> LatencyBuckets | None:
        return self._latency

    @latency.setter
    def latency(self, buckets: LatencyBuckets | None) -> None:
        """Observe each event record's delivery latency into ``buckets`` (metrics on):
        counted in the native delivery report, read at scrape time."""
        self._latency = buckets
        if buckets is not None:
            self._producer.observe_latency(buckets.bounds)
            buckets.read_from(self._producer.latency)

    # ---------------------------------------------------------------- session
    def start_session(self, routes: dict[int, Route], report_loss: LossReporter) -> None:
        """New routes and zeroed counters; the previous session must have been flushed."""
        self._carried = True
        self._report_loss = report_loss
        self._producer.start_session()
        self._routes = [None] * MAX_STREAMS
        for tp_id, route in routes.items():
            self._routes[tp_id] = route
            self._producer.set_route(tp_id, route.topic, route.headers)

    def _on_failures(self, failures: list[tuple[int, int, str, bool]]) -> None:
        """Records that failed after queueing (timed out, purged, refused by the
        broker), per stream, since the last poll. Those never sent, or refused, are
        producer losses. Those that timed out after they were sent are in doubt: the
        broker may have written them, so counting them lost could be a false claim
        (the ledger keeps them apart, and the audit settles them from the topic)."""
        for tp_id, count, error, in_doubt in failures:
            if in_doubt:
                self._log_limited(
                    "%d record(s) timed out after they were sent (%s); Kafka may have "
                    "written them: counted in doubt, settled by reading the topic.",
                    count,
                    error,
                )
                continue
            route = self._routes[tp_id]
            if self._report_loss is not None and route is not None:
                self._report_loss(route.sequence, LossStage.PRODUCER, count, False)
            self._log_limited(
                "Kafka did not accept %d record(s) (counted as producer losses): %s.",
                count,
                error,
            )

    # ---------------------------------------------------------------- events
    def produce_events(self, batch: list[_native.Encoded]) -> int:
        """Produce a drained batch; return how many were handed over (all, unless the
        queue stayed full past queue_full_timeout_ms)."""
        handed_over, refused = self._producer.produce_events(
            batch, self.key, self.config.queue_full_timeout_ms
        )
        if handed_over < len(batch):
            self._log_limited(
                "Kafka producer queue stayed full for %s ms; dropping the rest of "
                "the batch (counted as bridge losses).",
                self.config.queue_full_timeout_ms,
            )
        for tp_id, error in refused:  # refused before queueing, e.g. too large
            route = self._routes[tp_id]
            if self._report_loss is not None and route is not None:
                self._report_loss(route.sequence, LossStage.PRODUCER, 1, True)
            self._log_limited("Kafka refused a record (counted as a producer loss): %s.", error)
        return handed_over

    # ---------------------------------------------------------------- bridge's own records
    def produce_bridge_record(
        self, topic: str, value: bytes, headers: Headers, *, droppable: bool = False
    ) -> bool:
        """Heartbeats and dead letters: low rate, produced with a bounded wait (2 s)
        if the queue is full. Returns whether the record was queued.

        ``droppable`` (periodic heartbeats): no wait. The drain loop calls this, so
        every second it waited would be a second the rings fill during an outage; and
        a periodic heartbeat is superseded by the next one (its ``heartbeat_seq`` gap
        shows it was skipped), while the SESSION_END one is produced after the queue
        has been flushed."""
        for _ in range(2):
            code = self._producer.produce(topic, value, self.key, headers)
            if code == 0:
                return True
            if code != _producer.QUEUE_FULL:
                self.bridge_records_failed += 1
                log.error("Kafka refused a record for %s: %s.", topic, KafkaError(code).str())
                return False
            if droppable:
                self.bridge_records_skipped += 1
                self._log_limited(
                    "Skipped a periodic heartbeat: the producer queue is full (the next "
                    "one carries the same running totals)."
                )
                return False
            self._producer.poll(1.0)
        self.bridge_records_failed += 1
        log.error("Could not queue a record for %s: the producer queue is full.", topic)
        return False

    def _on_bridge_failure(self, topic: str, error: str) -> None:
        self.bridge_records_failed += 1
        log.error("A bridge record for %s was not delivered: %s.", topic, error)

    # ---------------------------------------------------------------- lifecycle
    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def purge(self) -> None:
        """Drop what was never sent (definitely not delivered: counted as producer
        losses through the delivery reports). Records already sent are left to settle,
        because the broker may have written them."""
        self._producer.purge_queued()

    def in_flight(self) -> int:
        return len(self._producer)

    def flush(self, timeout_s: float) -> int:
        """Wait for every queued record to be acked or to fail; return how many remain."""
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is left and release the client's threads and sockets."""
        if not self._carried:
            self._client_log.hushed = True  # nothing to deliver; see __init__
        remaining = self.flush(timeout_s)
        if remaining:
            log.error("%d records were still undelivered when the producer closed.", remaining)
        self._producer.close()

    def _on_log(self, level: int, facility: str, text: str) -> None:
        self._client_log.log(
            _LOG_LEVELS[min(max(level, 0), 7)], "%s [%s] %s", facility, self._name(), text
        )

    def _name(self) -> str:
        try:
            return self._producer.name
        except RuntimeError:  # closed
            return "rdkafka#producer"

    def _on_client_error(self, code: int, reason: str, fatal: bool) -> None:
        error = KafkaError(code, reason, fatal=fatal)
        if self._client_log.hushed:
            log.debug("Kafka client error while closing unused: %s.", error)
        elif fatal:
            log.error("Fatal Kafka producer error: %s.", error)
        else:
            self._log_limited("Kafka client error (will retry): %s.", error)

    def _log_limited(self, message: str, *args: object) -> None:
        """At most one such line every 5 s: a broker outage must not flood the log."""
        now = time.monotonic()
        if now - self._last_error_log >= 5.0:
            self._last_error_log = now
            log.error(message, *args)
