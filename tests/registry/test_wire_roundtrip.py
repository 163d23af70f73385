"""Registry-framed records through a real broker, decoded by us and by Confluent's client.

The values are made the way the bridge makes them: event records by the native encoder
configured with registry framing, the bridge's own records by ``SchemaStore.with_framing``. They are
read back and decoded twice: through ``SchemaStore.decode`` with a ``RegistryResolver``
(what ``tracebridge tail`` does), and by confluent-kafka's ``AvroDeserializer`` pointed at
Apicurio, which proves the bytes are the real Confluent wire format and not merely
something our own decoder agrees with.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bridge.codec.native import Encoder, configure
from bridge.codec.registry import (
    CONFLUENT_HEADER_SIZE,
    HEARTBEAT_RECORD,
    RegistryConfig,
    RegistryResolver,
    bridge_schema_topics,
    framing_by_name,
    register_schemas,
)
from bridge.codec.single_object import HEADER_SIZE, committed_schemas
from bridge.config import KafkaConfig
from bridge.consume import TopicReader
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.envelope import SourceKind
from bridge.events.spec import EventSpec, Kind
from bridge.sinks.kafka.topics import all_topics, bridge_topic, ensure_topics, event_topic
from tests.registry.samples import sample_record
from tests.support.raw_records import build_record

pytestmark = [pytest.mark.registry, pytest.mark.kafka]

# One event per subsystem with every kind of field between them (hash, payload, enum, C
# string, integers, bool): what the native encoder can write.
STREAMS = (
    "net:inbound_message",
    "validation:block_connected",
    "mempool:removed",
    "utxocache:add",
    "coin_selection:selected_coins",
)

# Loopback round trips take well under a second; this only ends a wedged broker.
IO_TIMEOUT_S = 60.0

SESSION = "2b1f6a8e-0000-4000-8000-000000000002"
WALL_OFFSET_NS = 1_700_000_000 * 10**9


def _raw_values(spec: EventSpec) -> dict[str, Any]:
    """Probe argument values for every field of ``spec``; enum fields get a known value."""
    values: dict[str, Any] = {}
    for number, field in enumerate(spec.fields, start=1):
        if field.enum is not None:
            values[field.name] = field.enum.values[0][0]
        elif field.kind is Kind.HASH32:
            values[field.name] = bytes(range(32))
        elif field.kind is Kind.CSTR:
            values[field.name] = f"v{number}"
        elif field.kind is Kind.PAYLOAD:
            values[field.name] = b"ping-payload"
        elif field.kind is Kind.BOOL:
            values[field.name] = True
        else:
            values[field.name] = number * 1000
    for field in spec.fields:
        if field.kind is Kind.PAYLOAD and field.length_of is not None:
            values[field.length_of] = len(values[field.name])
    return values


def _encoded(encoder: Encoder, spec: EventSpec) -> bytes:
    good, rejected = encoder.encode_one(build_record(spec, _raw_values(spec)))
    assert not rejected, rejected
    assert len(good) == 1
    return good[0][1]


def _consume_raw(bootstrap: str, topics: list[str], expected: int) -> list[tuple[str, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "registry-roundtrip",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in topics])
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + IO_TIMEOUT_S
        while len(out) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            out.append((message.topic() or "", message.value() or b""))
        return out
    finally:
        consumer.close()


def test_registry_framed_records_round_trip_through_kafka(
    registry_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    store = committed_schemas()
    registrations = register_schemas(
        RegistryConfig(url=registry_url), bridge_schema_topics(store, topic_prefix)
    )
    framing = framing_by_name(registrations)
    ensure_topics(
        KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix),
        all_topics(topic_prefix),
        1_000_000,
    )

    framed_encoder, plain_encoder = Encoder(), Encoder()
    configure(framed_encoder, EVENTS, store.with_framing(framing))
    configure(plain_encoder, EVENTS, store)
    for encoder in (framed_encoder, plain_encoder):
        encoder.set_session("node-r", SourceKind.USDT, SESSION, WALL_OFFSET_NS)

    sent: list[tuple[str, bytes, dict[str, Any]]] = []  # topic, value, expected record
    for name in STREAMS:
        spec = BY_NAME[name]
        framed = _encoded(framed_encoder, spec)
        plain = _encoded(plain_encoder, spec)
        record_name = full_name(event_schema(spec))
        # Only the framing differs: the registry id instead of C3 01 + fingerprint.
        assert framed[:CONFLUENT_HEADER_SIZE] == registrations[record_name].framing
        assert framed[CONFLUENT_HEADER_SIZE:] == plain[HEADER_SIZE:]
        sent.append((event_topic(topic_prefix, spec.subsystem), framed, store.decode(plain)[1]))
    heartbeat = sample_record(store.by_name(HEARTBEAT_RECORD).definition)
    sent.append(
        (
            bridge_topic(topic_prefix),
            store.with_framing(framing).encode(HEARTBEAT_RECORD, heartbeat),
            heartbeat,
        )
    )

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for topic, value, _ in sent:
        producer.produce(topic, value=value, key=b"node-r")
    assert producer.flush(IO_TIMEOUT_S) == 0

    topics = sorted({topic for topic, _, _ in sent})
    expected = {value: record for _, value, record in sent}

    # 1. Our reader, as `tracebridge tail` would run it with a registry.
    resolver = RegistryResolver.from_config(RegistryConfig(url=registry_url))
    try:
        with TopicReader(kafka_bootstrap, topics, store=store.with_resolver(resolver)) as reader:
            decoded = list(reader.records())
        assert len(decoded) == len(sent)
        assert all(r.error is None for r in decoded), [r.error for r in decoded]
        by_schema = {r.schema.full_name: r.value for r in decoded if r.schema is not None}
        for _, value, record in sent:
            schema, ours = store.decode(value, resolver)
            assert ours == record
            assert by_schema[schema.full_name] == record
            # Resolved to the committed schema (with its stability tag), not a copy.
            assert schema is store.by_name(schema.full_name)
    finally:
        resolver.close()

    # 2. Confluent's own deserializer, against Apicurio's ccompat API.
    client = SchemaRegistryClient({"url": registry_url})
    try:
        deserializer = AvroDeserializer(client)
        consumed = _consume_raw(kafka_bootstrap, topics, len(sent))
        assert len(consumed) == len(sent)
        for topic, value in consumed:
            theirs = deserializer(value, SerializationContext(topic, MessageField.VALUE))
            assert theirs == expected[value]
    finally:
        client.close()
