"""Encoding events for Kafka: the native hot path and Avro single-object framing."""
