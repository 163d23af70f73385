"""The bridge in registry mode: schemas registered at start, values in wire format."""

from __future__ import annotations

import pytest

from bridge.app import Bridge
from bridge.codec.registry import RegistryConfig, RegistryResolver
from bridge.codec.single_object import committed_schemas
from bridge.config import load_settings
from bridge.consume import TopicReader
from bridge.sinks.kafka.topics import all_topics
from bridge.verify import verify_records
from tests.support.scripted import ScriptedSession, ScriptedSource

pytestmark = [pytest.mark.registry, pytest.mark.kafka]


def test_the_bridge_registers_its_schemas_and_writes_the_wire_format(
    kafka_bootstrap: str, topic_prefix: str, registry_url: str
) -> None:
    settings = load_settings(
        None,
        {
            "usdt": {"binary": "/nonexistent"},
            "kafka": {"bootstrap_servers": kafka_bootstrap, "topic_prefix": topic_prefix},
            "registry": {"url": registry_url},
        },
    )
    session = ScriptedSession(count=25)
    Bridge(settings, ScriptedSource([session])).run()

    resolver = RegistryResolver.from_config(RegistryConfig(url=registry_url))
    store = committed_schemas().with_resolver(resolver)
    try:
        with TopicReader(kafka_bootstrap, all_topics(topic_prefix), store=store) as reader:
            records = list(reader.records())
    finally:
        resolver.close()
    assert records
    assert all(r.error is None for r in records), [r.error for r in records if r.error]
    # Without the registry the same values cannot be read: they are in the wire format.
    with TopicReader(kafka_bootstrap, all_topics(topic_prefix)) as plain:
        errors = {r.error for r in plain.records()}
    assert errors
    assert all("needs a schema registry" in str(error) for error in errors), errors
    events = [r for r in records if r.value and "envelope" in r.value]
    assert len(events) == 25
    verdicts = verify_records(
        (r.schema.full_name, r.value) for r in records if r.schema and r.value
    )
    assert verdicts
    assert all(v.ok for v in verdicts)
