"""TopicReader's bounded read against a real broker: all of it, only what was there when
the read began, and a loud error instead of a partial result.

Every test that judges the bridge by its topics reads them through this reader, so a
read that silently stopped short would look exactly like records the bridge lost.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.consume import IncompleteRead, TopicReader

pytestmark = [pytest.mark.kafka]


def _topics(bootstrap: str, counts: dict[str, int]) -> None:
    """Create the topics and write ``count`` records to each."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in counts]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic, count in counts.items():
        for index in range(count):
            producer.produce(topic, f"{topic}/{index}".encode())
    assert producer.flush(30) == 0


def test_a_bounded_read_is_every_record_there_when_it_began(kafka_bootstrap: str) -> None:
    prefix = f"r{uuid.uuid4().hex[:10]}"
    counts = {f"{prefix}.many": 500, f"{prefix}.empty": 0, f"{prefix}.one": 1}
    _topics(kafka_bootstrap, counts)
    with TopicReader(kafka_bootstrap, [*counts, f"{prefix}.absent"]) as reader:
        records = reader.records()
        first = next(records)  # the end offsets are fixed by now
        late = Producer({"bootstrap.servers": kafka_bootstrap})
        late.produce(f"{prefix}.one", b"after the read began")
        assert late.flush(30) == 0
        read = [first, *records]
    by_topic = {topic: sorted(r.offset for r in read if r.topic == topic) for topic in counts}
    assert by_topic == {topic: list(range(count)) for topic, count in counts.items()}
    # Not Avro: each record is still returned, with the reason it could not be decoded.
    assert all(r.value is None and r.error for r in read)


class _Overstated(TopicReader):
    """Claims three more records in every partition than the broker holds."""

    def end_offsets(self) -> dict[tuple[str, int], int]:
        return {key: high + 3 for key, high in super().end_offsets().items()}


def test_a_read_that_stalls_short_of_its_end_says_so(kafka_bootstrap: str) -> None:
    prefix = f"r{uuid.uuid4().hex[:10]}"
    _topics(kafka_bootstrap, {f"{prefix}.short": 4})
    with _Overstated(kafka_bootstrap, [f"{prefix}.short"]) as reader:
        records = reader.records(idle_timeout_s=1)
        read = [next(records) for _ in range(4)]
        with pytest.raises(IncompleteRead, match=rf"{prefix}\.short\[0\] at 4 of 7"):
            next(records)
    assert [r.offset for r in read] == [0, 1, 2, 3]
