"""Topics the bridge creates are served before it writes to them.

An idempotent producer told "no such topic" just after CreateTopics loses its sequence
numbers for the partition, and the broker may then take its first records for
duplicates: acknowledged, never written (librdkafka issue 3712; caught in CI as acked
seq 1 records missing from a fresh session's topics).
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from bridge.config import KafkaConfig
from bridge.sinks.kafka.topics import all_topics, ensure_topics

pytestmark = [pytest.mark.kafka]


def test_created_topics_are_served_and_take_their_first_records(kafka_bootstrap: str) -> None:
    prefix = f"c{uuid.uuid4().hex[:10]}"
    topics = all_topics(prefix)
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    assert sorted(ensure_topics(config, topics, 1_000_000)) == sorted(topics)

    # Straight away, a new client sees every partition with a leader...
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "creation"})
    try:
        metadata = consumer.list_topics(timeout=10)
        for topic in topics:
            partitions = metadata.topics[topic].partitions.values()
            assert partitions, topic
            assert all(p.leader >= 0 for p in partitions), topic
        # ... and an idempotent producer's first records all land.
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
        for topic in topics:
            for index in range(3):
                producer.produce(topic, f"{index}".encode(), key=b"node")
        assert producer.flush(30) == 0
        for topic in topics:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            assert (low, high) == (0, 3), topic
    finally:
        consumer.close()
    # Creating them again is a no-op (another bridge of the cluster got there first).
    assert ensure_topics(config, topics, 1_000_000) == []
