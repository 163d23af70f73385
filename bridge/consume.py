"""Reading the bridge's topics back: decode every record with the committed schemas.

Used by ``tracebridge tail``, the demo's live view and the tests. Records are read by
assigning every partition directly (no consumer group coordination), from the start or
the end, and decoded by their single-object fingerprint, so the reader needs nothing
but the brokers and the ``avro/`` files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from bridge.codec.single_object import (
    KnownSchema,
    SchemaStore,
    SingleObjectError,
    committed_schemas,
)


@dataclass(frozen=True)
class ConsumedRecord:
    """One decoded Kafka record with where it came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: dict[str, bytes]
    schema: KnownSchema | None
    value: dict[str, Any] | None
    error: str | None = None  # set instead of schema/value when the value is undecodable


def _consumer(bootstrap_servers: str, security: Mapping[str, str] | None) -> Consumer:
    return Consumer(
        {
            **(security or {}),  # bridge.sinks.kafka.security.client_security()
            "bootstrap.servers": bootstrap_servers,
            "group.id": "tracebridge-reader",  # required by librdkafka; nothing is committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "logger": logging.getLogger("librdkafka"),
        }
    )


class IncompleteRead(RuntimeError):
    """A bounded read stalled before reaching the end offsets it set out to read.

    Returning what was read so far would make missing records look like records that
    were never written; a reader that checks completeness (the audit, the tests) must
    hear that the read itself fell short."""


class TopicReader:
    """Iterate decoded records of some topics, from the beginning or the end."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        store: SchemaStore | None = None,
        security: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store or committed_schemas()
        self._consumer = _consumer(bootstrap_servers, security)
        metadata = self._consumer.list_topics(timeout=15)
        offset = OFFSET_BEGINNING if from_beginning else OFFSET_END
        self._partitions = [
            TopicPartition(topic, partition, offset)
            for topic in topics
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        self._assigned = False

    def end_offsets(self) -> dict[tuple[str, int], int]:
        """High watermarks now (what 'caught up' means for a bounded read).

        Asked before the partitions are assigned: once the consumer fetches, the broker
        answers each query only after the fetch long-poll ahead of it on the connection
        (up to ``fetch.wait.max.ms``, 500 ms, per partition)."""
        out = {}
        for tp in self._partitions:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            out[(tp.topic, tp.partition)] = high
        return out

    def records(
        self, *, follow: bool = False, idle_timeout_s: float = 30.0
    ) -> Iterator[ConsumedRecord]:
        """Decoded records. Without ``follow``, stop at the end offsets seen at the start;
        if no record or end of partition arrives for ``idle_timeout_s`` before then,
        raise :class:`IncompleteRead` rather than pass a partial read off as whole."""
        ends = {} if follow else self.end_offsets()
        if not self._assigned:
            self._consumer.assign(self._partitions)
            self._assigned = True
        done = {key for key, high in ends.items() if high == 0}
        last_progress = time.monotonic()
        while follow or len(done) < len(ends):
            message = self._consumer.poll(0.2)
            if message is None:
                if not follow and time.monotonic() - last_progress > idle_timeout_s:
                    raise IncompleteRead(self._shortfall(ends, done, idle_timeout_s))
                continue
            last_progress = time.monotonic()
            error = message.error()
            key = (message.topic() or "", message.partition() or 0)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if ends.get(key, 0) <= (message.offset() or 0):
                        done.add(key)
                    continue
                raise RuntimeError(f"Kafka consumer error: {error}")
            yield self._decode(message)
            offset = message.offset() or 0
            if offset + 1 >= ends.get(key, 0):
                done.add(key)

    def _shortfall(
        self, ends: dict[tuple[str, int], int], done: set[tuple[str, int]], idle_s: float
    ) -> str:
        positions = {
            (tp.topic, tp.partition): tp.offset for tp in self._consumer.position(self._partitions)
        }
        short = ", ".join(
            f"{topic}[{partition}] at {positions.get((topic, partition))} of {end}"
            for (topic, partition), end in sorted(ends.items())
            if (topic, partition) not in done
        )
        return f"no record for {idle_s:.0f} s before the end of {short}"

    def _decode(self, message: Any) -> ConsumedRecord:
        headers = {name: value or b"" for name, value in (message.headers() or [])}
        _, timestamp = message.timestamp()
        base = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp_ms": timestamp,
            "key": message.key(),
            "headers": headers,
        }
        try:
            schema, value = self.store.decode(message.value() or b"")
        except SingleObjectError as error:
            return ConsumedRecord(**base, schema=None, value=None, error=str(error))
        return ConsumedRecord(**base, schema=schema, value=value)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
