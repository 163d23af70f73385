"""Registering the committed schemas with a real Apicurio registry (ccompat v7 API).

Checked through the registry's own REST answers, not through our client's view of
them: subjects per topic + record, the compatibility level on each subject, and that
every framing id resolves back (GET /schemas/ids/{id}) to the schema it was made for.
"""

from __future__ import annotations

import copy
import json
import socket
import urllib.request
from typing import Any

import pytest

from bridge.codec.registry import (
    CONFLUENT_HEADER_SIZE,
    RegistryConfig,
    RegistryResolver,
    RegistryUnreachableError,
    SchemaIdUnresolvedError,
    SchemaRejectedError,
    bridge_schema_topics,
    confluent_framing,
    framing_by_name,
    register_schemas,
    subject_name,
)
from bridge.codec.single_object import SingleObjectError, committed_schemas, fingerprint
from bridge.events.compat import LEVEL_BY_STABILITY
from bridge.events.spec import Stability
from tests.registry.samples import sample_record

pytestmark = pytest.mark.registry

HEARTBEAT = "tracebridge.bridge.Heartbeat"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _register_all(registry_url: str, prefix: str) -> dict[str, Any]:
    pairs = bridge_schema_topics(committed_schemas(), prefix)
    return register_schemas(RegistryConfig(url=registry_url), pairs)


def test_every_committed_schema_registers_under_topic_and_record(
    registry_url: str, topic_prefix: str
) -> None:
    store = committed_schemas()
    pairs = bridge_schema_topics(store, topic_prefix)
    registrations = register_schemas(RegistryConfig(url=registry_url), pairs)

    # Every committed schema, exactly once, under <topic>-<record full name>.
    assert sorted(registrations) == store.names()
    subjects = set(_get(f"{registry_url}/subjects"))
    for topic, known in pairs:
        registration = registrations[known.full_name]
        assert registration.topic == topic
        assert registration.subject == f"{topic}-{known.full_name}"
        assert registration.subject in subjects
        assert registration.framing == b"\x00" + registration.schema_id.to_bytes(4, "big")
    # Several record types share one topic: that is why the strategy is topic + record.
    net = [r for r in registrations.values() if r.topic == f"{topic_prefix}.net"]
    assert len(net) > 1
    assert len({r.subject for r in net}) == len(net)


def test_compatibility_levels_follow_stability(registry_url: str, topic_prefix: str) -> None:
    registrations = _register_all(registry_url, topic_prefix)
    store = committed_schemas()
    seen = set()
    for name, registration in registrations.items():
        expected = LEVEL_BY_STABILITY[Stability(store.by_name(name).stability)]
        config = _get(f"{registry_url}/config/{registration.subject}")
        assert config["compatibilityLevel"] == expected.value, registration.subject
        seen.add(expected.value)
    # The committed set exercises more than one rule.
    assert {"FULL_TRANSITIVE", "BACKWARD", "NONE"} <= seen


def test_framing_ids_resolve_to_the_same_schema(registry_url: str, topic_prefix: str) -> None:
    registrations = _register_all(registry_url, topic_prefix)
    store = committed_schemas()
    for name, registration in registrations.items():
        answer = _get(f"{registry_url}/schemas/ids/{registration.schema_id}")
        # Apicurio re-serialises the schema (key order changes), so compare fingerprints
        # of the parsing canonical form, which is what identifies an Avro schema.
        assert fingerprint(json.loads(answer["schema"])) == store.by_name(name).fingerprint


def test_registering_again_is_idempotent(registry_url: str, topic_prefix: str) -> None:
    first = _register_all(registry_url, topic_prefix)
    second = _register_all(registry_url, topic_prefix)
    assert {n: r.schema_id for n, r in first.items()} == {n: r.schema_id for n, r in second.items()}
    versions = _get(f"{registry_url}/subjects/{first[HEARTBEAT].subject}/versions")
    assert versions == [1]


def _stable_schema() -> tuple[str, Any]:
    store = committed_schemas()
    stable = [n for n in store.names() if store.by_name(n).stability == "stable"]
    return stable[0], store.by_name(stable[0])


def test_incompatible_change_to_a_stable_schema_is_refused_clearly(
    registry_url: str, topic_prefix: str
) -> None:
    name, known = _stable_schema()
    topic = f"{topic_prefix}.stable"
    register_schemas(RegistryConfig(url=registry_url), [(topic, known)])

    changed = copy.deepcopy(known.definition)
    # A new field without a default: old data cannot be read by the new schema.
    changed["fields"].append({"name": "added_without_default", "type": "long"})
    from bridge.codec.single_object import SchemaStore

    broken = SchemaStore([changed]).by_name(name)
    with pytest.raises(SchemaRejectedError) as caught:
        register_schemas(RegistryConfig(url=registry_url), [(topic, broken)])
    error = caught.value
    assert error.subject == subject_name(topic, name)
    message = str(error)
    assert error.subject in message
    assert "FULL_TRANSITIVE" in message
    assert registry_url in message
    # The registry's own reason, without Apicurio's Java exception class in front of it.
    assert "Incompatible" in error.reason
    assert "RuleViolationException" not in error.reason
    assert "HTTP 409" in message
    assert "tracebridge schemas compat" in message


def test_compatible_change_to_a_stable_schema_is_accepted(
    registry_url: str, topic_prefix: str
) -> None:
    name, known = _stable_schema()
    topic = f"{topic_prefix}.stable"
    first = register_schemas(RegistryConfig(url=registry_url), [(topic, known)])[name]
    changed = copy.deepcopy(known.definition)
    changed["fields"].append({"name": "added_with_default", "type": "long", "default": 0})
    from bridge.codec.single_object import SchemaStore

    evolved = SchemaStore([changed]).by_name(name)
    second = register_schemas(RegistryConfig(url=registry_url), [(topic, evolved)])[name]
    assert second.schema_id != first.schema_id
    versions = _get(f"{registry_url}/subjects/{second.subject}/versions")
    assert versions == [1, 2]


def test_unreachable_registry_is_named_in_the_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    _, known = _stable_schema()
    with pytest.raises(RegistryUnreachableError) as caught:
        register_schemas(RegistryConfig(url=url, timeout_s=2), [("t.stable", known)])
    assert url in str(caught.value)
    assert "did not answer" in str(caught.value)


def test_resolver_decodes_framed_values_as_committed_schemas(
    registry_url: str, topic_prefix: str
) -> None:
    store = committed_schemas()
    registrations = _register_all(registry_url, topic_prefix)
    known = store.by_name(HEARTBEAT)
    sample = sample_record(known.definition)
    value = store.with_framing(framing_by_name(registrations)).encode(HEARTBEAT, sample)
    assert value[:CONFLUENT_HEADER_SIZE] == registrations[HEARTBEAT].framing

    resolver = RegistryResolver.from_config(RegistryConfig(url=registry_url))
    try:
        schema, decoded = store.decode(value, resolver)
        assert schema is known  # matched to the committed schema, docs and tags included
        assert decoded == sample
        # The store's with_resolver() copy decodes both encodings by itself.
        reader_store = store.with_resolver(resolver)
        assert reader_store.decode(value)[1] == sample
        assert reader_store.decode(store.encode(HEARTBEAT, sample))[1] == sample

        unknown = confluent_framing(2**31 - 1) + b"\x00"
        with pytest.raises(SchemaIdUnresolvedError, match=str(2**31 - 1)):
            store.decode(unknown, resolver)
        assert issubclass(SchemaIdUnresolvedError, SingleObjectError)
    finally:
        resolver.close()
