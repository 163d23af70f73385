"""Readers that are not this project: Kafka's JVM consumer and Kafka Connect, on real records.

The real bridge writes a realistic set of records twice, once in each framing: the
emulated node (real uprobes) fires every tracepoint with edge values, some invalid
UTF-8 among them (dead letters), and the emulated bitcoin-node (real Cap'n Proto over a
Unix socket) sends every IPC stream, notifications, tip and polled snapshots. Together
they fill every topic of the prefix, heartbeats included.

Then programs built only from Maven Central's Apache Kafka, Apache Avro and Apicurio
(deploy/jvm/) read them, and what each decoded must equal, field for field and record
for record (by topic, partition and offset), what the project's own Python replay
(``bridge.replay.read_records``) decodes:

- ``TopicDump`` over single-object records: Avro's ``BinaryMessageDecoder`` resolving each
  writer schema by its fingerprint in a ``SchemaStore`` of the committed avro/ files;
- ``TopicDump`` over the Confluent wire format: Apicurio's ``AvroKafkaDeserializer``
  fetching each writer schema by id from the project's local Apicurio registry;
- Kafka Connect standalone with Apicurio's ``AvroConverter``, the built-in ``InsertField``
  and the FileStream sink, using deploy/jvm/connect/'s properties files unchanged.

JSON cannot say everything Avro can, so both sides are brought to exact values
deliberately (tests/support/avro_json.py): the JVM's JSON is read back by the committed
schema, bytes from hex (TopicDump) or base64 (Connect), and doubles compared by their bits.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("capnp")

from bridge.codec.registry import RegistryConfig, RegistryResolver
from bridge.codec.single_object import SchemaStore, committed_schemas, fingerprint
from bridge.config import BridgeSettings
from bridge.emulator import UsdtNode, UsdtScenario, build_usdt_node
from bridge.emulator.ipc_node import IpcNode
from bridge.emulator.ipc_scenario import IpcScenario, StreamName
from bridge.replay import BridgeRecord, Event, read_records
from bridge.sinks.kafka.topics import all_topics
from tests.ipc.ipc_harness import BRIDGE_STREAMS, ipc_settings, running_ipc_bridge
from tests.support.avro_json import (
    AvroJsonReader,
    BytesText,
    comparable,
    from_base64,
    from_hex,
)
from tests.support.jvm import prefix_regex, running_connect, topic_dump
from tests.support.pipeline import running_bridge, settings_for

pytestmark = [
    pytest.mark.bpf,
    pytest.mark.ipc,
    pytest.mark.kafka,
    pytest.mark.registry,
    pytest.mark.slow,
]

USDT_COUNT = 12  # per tracepoint; edge tables, some values invalid UTF-8
# chain: five block cycles, the fifth a one-block reorg (ChainScript), so every
# ChainNotifications record type is among them.
IPC_COUNTS: dict[StreamName, int] = {"utxo": 12, "net": 12, "chain": 36, "node_notifications": 12}
IPC_POLL_S = 0.5  # snapshots (node:peers, ...) and the tip follower
PAYLOAD_CAP = 256  # below the edge payloads: truncated messages are among the records

Where = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Replayed:
    """One record as the project's Python replay decodes it."""

    schema: str
    value: dict[str, Any]
    timestamp_ms: int


@dataclass(frozen=True)
class Written:
    """What the bridge wrote under one prefix, in one framing, as replay reads it back."""

    prefix: str
    registry_url: str | None
    records: dict[Where, Replayed]

    @property
    def topics(self) -> list[str]:
        return all_topics(self.prefix)


def _with_registry(settings: BridgeSettings, registry_url: str | None) -> BridgeSettings:
    if registry_url is None:
        return settings
    return settings.model_copy(update={"registry": RegistryConfig(url=registry_url)})


def _usdt_run(bootstrap: str, prefix: str, registry_url: str | None, tmp_path: Path) -> None:
    """Every tracepoint, edge values and some malformed ones (dead letters), real uprobes."""
    scenario = UsdtScenario(count=USDT_COUNT, values="edge", malformed=True, wait_start=True)
    with UsdtNode(build_usdt_node(wallet=True)) as node:
        node.start(scenario, record=tmp_path / "fired.jsonl")
        settings = settings_for(
            bootstrap, prefix, pid=node.pid, reattach=False, payload_capture_bytes=PAYLOAD_CAP
        )
        with running_bridge(_with_registry(settings, registry_url), tmp_path) as bridge:
            bridge.wait_for("attached")
            node.go()
            node.wait(timeout=120)
            bridge.wait_for("stopped", timeout=120)


def _ipc_run(bootstrap: str, prefix: str, registry_url: str | None, tmp_path: Path) -> None:
    """Every IPC stream with edge values, the tip, and a few rounds of polled snapshots."""
    scenario = IpcScenario(
        streams=tuple(IPC_COUNTS),
        counts=tuple(IPC_COUNTS.items()),
        values="edge",
        wait_start=True,
        linger=True,
    )
    with IpcNode() as node:
        node.start(scenario, tmp_path / "sent.jsonl")
        settings = ipc_settings(
            bootstrap,
            prefix,
            node.socket,
            poll_interval_s=IPC_POLL_S,
            max_payload_bytes=PAYLOAD_CAP,
            reattach=False,
        )
        with running_ipc_bridge(_with_registry(settings, registry_url), tmp_path) as bridge:
            session = bridge.wait_for("attached")["session_id"]
            node.go()
            for stream, count in IPC_COUNTS.items():
                bridge.wait_captured(session, BRIDGE_STREAMS[stream], count)
            time.sleep(3 * IPC_POLL_S)  # the tip follower and the poller see the final state
            node.stop()
            bridge.wait_for("stopped")


def _replay(bootstrap: str, prefix: str, registry_url: str | None) -> dict[Where, Replayed]:
    """Every record of the prefix, decoded by the project's replay (both framings)."""
    store: SchemaStore = committed_schemas()
    resolver = None
    if registry_url is not None:
        resolver = RegistryResolver.from_config(RegistryConfig(url=registry_url))
        store = store.with_resolver(resolver)
    out: dict[Where, Replayed] = {}
    try:
        for item in read_records(bootstrap, all_topics(prefix), store=store):
            assert isinstance(item, (Event, BridgeRecord)), item  # nothing undecodable
            value = item.value() if isinstance(item, Event) else item.value
            out[(item.topic, item.partition, item.offset)] = Replayed(
                item.record, value, item.timestamp_ms
            )
    finally:
        if resolver is not None:
            resolver.close()
    return out


def _write(bootstrap: str, registry_url: str | None, factory: pytest.TempPathFactory) -> Written:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _usdt_run(bootstrap, prefix, registry_url, factory.mktemp("usdt"))
    _ipc_run(bootstrap, prefix, registry_url, factory.mktemp("ipc"))
    written = Written(prefix, registry_url, _replay(bootstrap, prefix, registry_url))
    per_topic = Counter(topic for topic, _, _ in written.records)
    assert set(per_topic) == set(written.topics), per_topic  # every topic has records
    kinds = {replayed.schema for replayed in written.records.values()}
    assert kinds == set(committed_schemas().names())  # and every record type is among them
    return written


@pytest.fixture(scope="module")
def single_object(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Written:
    return _write(kafka_bootstrap, None, tmp_path_factory)


@pytest.fixture(scope="module")
def wire_format(
    kafka_bootstrap: str, registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Written:
    return _write(kafka_bootstrap, registry_url, tmp_path_factory)


def _assert_same_values(
    written: Written, decoded: dict[Where, dict[str, Any]], bytes_text: BytesText
) -> None:
    """The JVM decoded exactly the records replay did (no more, none twice), each to the
    same values: its JSON read back by the committed schema of the record replay found."""
    assert sorted(decoded) == sorted(written.records)
    store = committed_schemas()
    readers = {
        name: AvroJsonReader(store.by_name(name).definition, bytes_text) for name in store.names()
    }
    for where, replayed in written.records.items():
        jvm_value = readers[replayed.schema].read(decoded[where])
        assert comparable(jvm_value) == comparable(replayed.value), (where, replayed.schema)


def _check_dump(written: Written, lines: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Compare a TopicDump's lines with replay; return each record name's writer ids."""
    errors = [line for line in lines if "error" in line]
    assert not errors, errors[:5]
    decoded = {(x["topic"], x["partition"], x["offset"]): x["value"] for x in lines}
    assert len(decoded) == len(lines)  # no record twice
    _assert_same_values(written, decoded, from_hex)
    writers: dict[str, set[str]] = {}
    for line in lines:
        where = (line["topic"], line["partition"], line["offset"])
        assert line["schema"] == written.records[where].schema, where
        assert line["timestamp"] == written.records[where].timestamp_ms
        assert line["key"] in ("emulated-node", "emulated-ipc-node")
        writers.setdefault(line["schema"], set()).add(line["writer"])
    return writers


def test_a_jvm_consumer_reads_single_object_records_with_avros_own_decoder(
    kafka_bootstrap: str, single_object: Written
) -> None:
    dump = topic_dump(kafka_bootstrap, single_object.topics)
    assert dump.returncode == 0, dump.stderr
    writers = _check_dump(single_object, dump.lines)
    # Each record type was resolved by the fingerprint of its committed schema.
    store = committed_schemas()
    assert writers == {name: {store.by_name(name).fingerprint.hex()} for name in store.names()}


def test_a_jvm_consumer_reads_the_wire_format_through_the_registry(
    kafka_bootstrap: str, wire_format: Written, registry_url: str
) -> None:
    dump = topic_dump(kafka_bootstrap, wire_format.topics, registry_url=registry_url)
    assert dump.returncode == 0, dump.stderr
    writers = _check_dump(wire_format, dump.lines)
    # Each record type has one id, under which the registry holds its committed schema.
    store = committed_schemas()
    resolver = RegistryResolver.from_config(RegistryConfig(url=registry_url))
    try:
        for name, ids in writers.items():
            (schema_id,) = ids
            held = json.loads(resolver.fetch_schema(int(schema_id)))
            assert fingerprint(held) == store.by_name(name).fingerprint, name
    finally:
        resolver.close()


def test_kafka_connect_sinks_every_record_with_its_values(
    kafka_bootstrap: str, wire_format: Written, registry_url: str, tmp_path: Path
) -> None:
    """Connect with Apicurio's AvroConverter into the FileStream sink: every record of
    every topic arrives once, with the values replay decodes."""
    expected = len(wire_format.records)
    regex = prefix_regex(wire_format.prefix)
    with running_connect(kafka_bootstrap, registry_url, regex, tmp_path) as connect:
        lines = connect.wait_for_lines(expected, timeout=120)
        time.sleep(1.0)  # nothing more may come: a duplicate would show now
        lines = connect.lines()
    decoded: dict[Where, dict[str, Any]] = {}
    for line in lines:
        where = (line.pop("kafka_topic"), line.pop("kafka_partition"), line.pop("kafka_offset"))
        assert where not in decoded, f"{where} arrived twice"
        decoded[where] = line
    _assert_same_values(wire_format, decoded, from_base64)
