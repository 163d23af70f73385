"""Read topics back both decoded and as the bytes Kafka holds (tests only).

Redaction is judged on the bytes: an address must not appear in any value, key or
header of any topic, whatever a decoder would make of them.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bridge.consume import ConsumedRecord, TopicReader
from bridge.sinks.kafka.topics import all_topics


class _RawReader(TopicReader):
    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(bootstrap, topics)
        self.raw: list[bytes] = []

    def _decode(self, message: Any) -> ConsumedRecord:
        headers = b"".join(value or b"" for _, value in message.headers() or [])
        self.raw.append((message.value() or b"") + (message.key() or b"") + headers)
        return super()._decode(message)


def read_raw(bootstrap: str, prefix: str) -> tuple[list[ConsumedRecord], list[bytes]]:
    """Every record of the prefix's topics, decoded, and the bytes of each."""
    reader = _RawReader(bootstrap, all_topics(prefix))
    try:
        records = list(reader.records())
    finally:
        reader.close()
    return records, reader.raw


def leaks(raw: list[bytes], secrets: set[bytes]) -> list[tuple[bytes, bytes]]:
    """(secret, value) for every secret found in a value; empty when none leaked."""
    return [(secret, value) for value in raw for secret in secrets if secret in value]


def topic_marks(bootstrap: str, prefix: str) -> dict[str, tuple[int, int]]:
    """(low, high) watermarks of the prefix's topics (partition 0): when a test misses a
    record Kafka acknowledged, whether the broker still holds it, or held and deleted it
    (a low watermark above 0), tells reader from writer from broker."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tracebridge-tests"})
    try:
        return {
            topic: consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            for topic in all_topics(prefix)
        }
    finally:
        consumer.close()
