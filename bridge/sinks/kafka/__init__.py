"""Kafka: topics, the producer and its delivery accounting."""
