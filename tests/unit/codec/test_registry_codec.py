"""Registry mode without a registry process: config, framing, decode dispatch, mock client.

The real registry (Apicurio) is exercised in tests/registry; here confluent-kafka's
in-process mock (``mock://``) stands in where only the client's side matters, and a
dictionary resolver where only SchemaStore.decode's dispatch matters.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

from bridge.codec.native import Encoder, configure
from bridge.codec.registry import (
    CONFLUENT_HEADER_SIZE,
    DEAD_LETTER_RECORD,
    HEARTBEAT_RECORD,
    RegistryConfig,
    RegistryError,
    RegistryResolver,
    SchemaIdUnresolvedError,
    SchemaRegistrar,
    bridge_schema_topics,
    confluent_framing,
    framing_by_name,
    open_client,
    parse_confluent_framing,
    register_schemas,
    subject_name,
)
from bridge.codec.single_object import (
    HEADER_SIZE,
    SchemaStore,
    SingleObjectError,
    committed_schemas,
)
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.catalog import ALL_EVENTS, BY_NAME, EVENTS
from bridge.events.compat import Level
from bridge.events.envelope import SourceKind
from tests.registry.samples import sample_record
from tests.support.raw_records import build_record

MOCK_URL = "mock://tracebridge-unit"


class DictResolver:
    """A resolver over a dict, counting fetches (the store must not refetch per record)."""

    def __init__(self, texts: dict[int, str]) -> None:
        self.texts = texts
        self.fetches: list[int] = []

    def fetch_schema(self, schema_id: int) -> str:
        self.fetches.append(schema_id)
        try:
            return self.texts[schema_id]
        except KeyError:
            raise SingleObjectError(f"schema id {schema_id} unknown") from None


# -- config ---------------------------------------------------------------------------


def test_registry_config_defaults_and_validation() -> None:
    config = RegistryConfig()
    assert config.url is None
    assert config.subject_name_strategy == "topic_record"
    assert config.timeout_s > 0
    assert RegistryConfig(url=" http://r:8080/apis/ccompat/v7/ ").url == (
        "http://r:8080/apis/ccompat/v7"
    )
    assert RegistryConfig(url="").url is None
    with pytest.raises(ValidationError, match="not an http"):
        RegistryConfig(url="r:8080")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RegistryConfig(urll="http://r")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RegistryConfig(subject_name_strategy="topic")
    with pytest.raises(ValidationError, match="frozen"):
        config.url = "http://other"  # type: ignore[misc]
    # Every field documents itself (the settings table in the README is generated).
    assert all(field.description for field in RegistryConfig.model_fields.values())


# -- naming and framing ---------------------------------------------------------------


def test_subject_names_are_topic_and_record() -> None:
    assert subject_name("tracebridge.net", "tracebridge.net.InboundMessage") == (
        "tracebridge.net-tracebridge.net.InboundMessage"
    )


def test_confluent_framing_is_magic_zero_and_big_endian_id() -> None:
    assert confluent_framing(1) == b"\x00\x00\x00\x00\x01"
    assert confluent_framing(0x01020304) == b"\x00\x01\x02\x03\x04"
    assert len(confluent_framing(2**32 - 1)) == CONFLUENT_HEADER_SIZE
    assert parse_confluent_framing(confluent_framing(77) + b"body") == 77
    with pytest.raises(SingleObjectError):
        parse_confluent_framing(b"\xc3\x01")


def test_every_schema_gets_a_topic() -> None:
    store = committed_schemas()
    pairs = bridge_schema_topics(store, "p")
    assert sorted(known.full_name for _, known in pairs) == store.names()
    topics = dict((known.full_name, topic) for topic, known in pairs)
    assert topics[HEARTBEAT_RECORD] == "p.bridge"
    assert topics[DEAD_LETTER_RECORD] == "p.deadletter"
    for spec in ALL_EVENTS:
        assert topics[full_name(event_schema(spec))] == f"p.{spec.subsystem}"


# -- the mock client ------------------------------------------------------------------


def test_register_with_the_mock_client() -> None:
    store = committed_schemas()
    registrations = register_schemas(RegistryConfig(url=MOCK_URL), bridge_schema_topics(store, "m"))
    assert sorted(registrations) == store.names()
    ids = [r.schema_id for r in registrations.values()]
    assert len(set(ids)) == len(ids)
    heartbeat = registrations[HEARTBEAT_RECORD]
    assert heartbeat.subject == f"m.bridge-{HEARTBEAT_RECORD}"
    assert heartbeat.compatibility is Level.FULL_TRANSITIVE
    assert heartbeat.framing == confluent_framing(heartbeat.schema_id)
    levels = {r.compatibility for r in registrations.values()}
    assert levels == {Level.FULL_TRANSITIVE, Level.BACKWARD, Level.NONE}


def test_open_client_needs_a_url() -> None:
    with pytest.raises(RegistryError, match=r"registry\.url is not set"):
        register_schemas(RegistryConfig(), [])


def test_resolver_with_the_mock_client_decodes_framed_values() -> None:
    store = committed_schemas()
    # The mock keeps its schemas per client object, so registrar and resolver share one.
    client = open_client(RegistryConfig(url=MOCK_URL))
    registrations = SchemaRegistrar(client, MOCK_URL).register_all(bridge_schema_topics(store, "m"))
    framing = framing_by_name(registrations)
    resolver = RegistryResolver(client, MOCK_URL)
    sample = sample_record(store.by_name(DEAD_LETTER_RECORD).definition)
    value = store.with_framing(framing).encode(DEAD_LETTER_RECORD, sample)
    assert value.startswith(framing[DEAD_LETTER_RECORD])
    known, decoded = store.decode(value, resolver)
    assert known is store.by_name(DEAD_LETTER_RECORD)
    assert decoded == sample
    with pytest.raises(SchemaIdUnresolvedError, match=r"schema id 999999 is not known"):
        store.decode(confluent_framing(999_999) + b"\x00", resolver)


# -- SchemaStore.decode's dispatch ----------------------------------------------------


def _framed(store: SchemaStore, name: str, schema_id: int, record: dict[str, Any]) -> bytes:
    return store.with_framing({name: confluent_framing(schema_id)}).encode(name, record)


def test_decode_dispatches_on_the_first_byte() -> None:
    store = committed_schemas()
    sample = sample_record(store.by_name(HEARTBEAT_RECORD).definition)
    single = store.encode(HEARTBEAT_RECORD, sample)
    framed = _framed(store, HEARTBEAT_RECORD, 5, sample)
    assert framed[CONFLUENT_HEADER_SIZE:] == single[HEADER_SIZE:]

    # Apicurio hands back a re-serialised schema; matching goes by canonical form.
    definition = store.by_name(HEARTBEAT_RECORD).definition
    reordered = json.dumps(dict(reversed(list(definition.items()))))
    resolver = DictResolver({5: reordered})
    assert store.decode(single) == store.decode(framed, resolver)
    for _ in range(3):
        assert store.decode(framed, resolver)[0] is store.by_name(HEARTBEAT_RECORD)
    # RegistryResolver caches by id (this one does not); the store parses each text once.
    assert resolver.fetches == [5, 5, 5, 5]

    with pytest.raises(SingleObjectError, match=r"schema id 5.*needs a schema registry"):
        store.decode(framed)
    with pytest.raises(SingleObjectError, match="starts with 7b22"):
        store.decode(b'{"json": 1}')
    with pytest.raises(SingleObjectError, match="starts with nothing"):
        store.decode(b"")
    with pytest.raises(SingleObjectError, match="truncated Confluent"):
        store.decode(b"\x00\x00\x01", resolver)
    with pytest.raises(SingleObjectError, match="truncated single-object"):
        store.decode(b"\xc3\x01\x00")
    with pytest.raises(SingleObjectError, match="unknown schema fingerprint"):
        store.decode(b"\xc3\x01" + b"\xff" * 8)
    with pytest.raises(SingleObjectError, match="corrupt"):
        store.decode(framed[: CONFLUENT_HEADER_SIZE + 2], resolver)


def test_with_resolver_shares_schemas_and_keeps_the_original_plain() -> None:
    store = committed_schemas()
    resolver = DictResolver({})
    bound = store.with_resolver(resolver)
    assert bound.resolver is resolver
    assert store.resolver is None
    assert bound.by_name(HEARTBEAT_RECORD) is store.by_name(HEARTBEAT_RECORD)


def test_a_schema_the_bridge_does_not_know_decodes_with_the_registry_schema() -> None:
    foreign = {
        "type": "record",
        "name": "Other",
        "namespace": "someone.else",
        "fields": [{"name": "x", "type": "long"}],
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(dict(foreign)), {"x": 42})
    value = confluent_framing(9) + buffer.getvalue()
    known, record = committed_schemas().decode(value, DictResolver({9: json.dumps(foreign)}))
    assert known.full_name == "someone.else.Other"
    assert known.stability == "unknown"
    assert record == {"x": 42}
    with pytest.raises(SingleObjectError, match="not valid Avro"):
        committed_schemas().decode(value, DictResolver({9: "{not json"}))


# -- native encoder with registry framing ---------------------------------------------


def test_native_encoder_writes_the_registry_framing() -> None:
    store = committed_schemas()
    spec = BY_NAME["mempool:added"]
    name = full_name(event_schema(spec))
    framing = {name: confluent_framing(4242)}
    framed_encoder, plain_encoder = Encoder(), Encoder()
    configure(framed_encoder, EVENTS, store.with_framing(framing))
    configure(plain_encoder, EVENTS, store)
    values: dict[str, Any] = {f.name: 0 for f in spec.fields}
    values.update({f.name: bytes(range(32)) for f in spec.fields if f.kind.value == "hash32"})
    raw = build_record(spec, values)
    outputs = []
    for encoder in (framed_encoder, plain_encoder):
        encoder.set_session("n", SourceKind.USDT, "s", 0)
        good, rejected = encoder.encode_one(raw)
        assert not rejected
        outputs.append(good[0][1])
    framed, plain = outputs
    assert framed[:CONFLUENT_HEADER_SIZE] == framing[name]
    assert framed[CONFLUENT_HEADER_SIZE:] == plain[HEADER_SIZE:]
    # Streams without an entry keep single-object framing.
    other = BY_NAME["validation:block_connected"]
    other_values: dict[str, Any] = {f.name: 0 for f in other.fields}
    other_values.update({f.name: b"\x01" * 32 for f in other.fields if f.kind.value == "hash32"})
    good, _ = framed_encoder.encode_one(build_record(other, other_values))
    assert good[0][1][:2] == b"\xc3\x01"
