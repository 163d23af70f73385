"""Republish: copy a range of records into ``<prefix>.replay.*`` so jobs can run again.

A downstream job that must be re-run (a bug fixed, a new aggregation) should see the
records exactly as the bridge wrote them. So each record is copied byte for byte:
value (envelope with node, session, seq, times and loss counts unchanged; the framing,
single-object or registry, unchanged), key, timestamp, headers and partition number.
One header is added, ``replayed``, naming the original ``topic/partition/offset``; a
consumer that must tell a replay from live data reads it.

``<prefix>.<subsystem>`` goes to ``<prefix>.replay.<subsystem>``, created with the
source's partition count. With ``ledger=True`` the selected nodes' heartbeats go to
``<prefix>.replay.bridge`` too (whole, not cut by the time range), so ``tracebridge
audit --prefix <prefix>.replay`` can check the copy: a copy of whole sessions passes,
a cut one shows exactly what was left out.

Records are selected like a replay (nodes, streams, time, offsets) but are not decoded
where that is not needed: an unselected stream is skipped by its fingerprint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.codec.fast_decode import FastDecoder
from bridge.codec.single_object import SchemaStore, SingleObjectError, committed_schemas
from bridge.replay.kafka_range import RangeReader, ReplayError, Window
from bridge.replay.selection import Selection, ledger_topic, prefix_of

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]
REPLAYED_HEADER = "replayed"
REPLAY_INFIX = "replay"


def replay_topic(topic: str) -> str:
    """``tracebridge.net`` -> ``tracebridge.replay.net``."""
    prefix, suffix = topic.rsplit(".", 1)
    return f"{prefix}.{REPLAY_INFIX}.{suffix}"


@dataclass
class RepublishReport:
    copied: dict[str, int] = field(default_factory=dict)  # per target topic
    skipped: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return sum(self.copied.values())


def _ensure_targets(admin: AdminClient, sources: Iterable[str], timeout_s: float = 30.0) -> None:
    """Create the missing replay topics like their sources: partitions and replication."""
    metadata = admin.list_topics(timeout=timeout_s).topics
    wanted = []
    for topic in sources:
        source = metadata.get(topic)
        if source is None or replay_topic(topic) in metadata:
            continue
        replicas = max((len(p.replicas) for p in source.partitions.values()), default=1)
        wanted.append(NewTopic(replay_topic(topic), len(source.partitions), replicas))
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as error:  # a concurrent creator wins: fine
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ReplayError(f"cannot create {topic}: {error.args[0].str()}") from None


def republish(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    window: Window | None = None,
    nodes: Sequence[str] | None = None,
    streams: Iterable[str] | None = None,
    ledger: bool = True,
    store: SchemaStore | None = None,
    producer_config: dict[str, Any] | None = None,
    security: dict[str, str] | None = None,
) -> RepublishReport:
    """Copy the selected records of ``topics`` (event topics of one or more prefixes).

    ``security`` (``bridge.sinks.kafka.security.client_security``) goes to every client:
    the reader, the admin client and the producer."""
    window = window or Window()
    decoder = FastDecoder(store or committed_schemas())
    selection = Selection(decoder.store, nodes, streams)
    ledger_topics = sorted({ledger_topic(prefix_of(t)) for t in topics}) if ledger else []
    report = RepublishReport()
    security = security or {}
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **security})
    producer = Producer(
        {
            **security,
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "queue.buffering.max.messages": 1_000_000,
            "logger": logging.getLogger("librdkafka"),
            **(producer_config or {}),
        }
    )
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            report.failed += 1
            if len(failures) < 5:
                failures.append(f"{message.topic()}: {error.str()}")

    now_ms = str(int(time.time() * 1000)).encode()
    plans = [(list(topics), window, True), (ledger_topics, Window(), False)]
    for source_topics, source_window, events in plans:
        if not source_topics:
            continue
        with RangeReader(
            bootstrap_servers, source_topics, source_window, config=dict(security)
        ) as reader:
            _ensure_targets(admin, {span.topic for span in reader.spans})
            for batch in reader.batches():
                for message in batch:
                    value = message.value() or b""
                    if not _selected(decoder, selection, window, value, events):
                        report.skipped += 1
                        continue
                    topic = message.topic() or ""
                    target = replay_topic(topic)
                    # the stubs type headers loosely; librdkafka gives (str, bytes | None) pairs
                    headers = cast(Headers, list(message.headers() or []))
                    origin = f"{topic}/{message.partition()}/{message.offset()}"
                    headers.append((REPLAYED_HEADER, origin.encode()))
                    headers.append(("replayed_at_ms", now_ms))
                    _produce(
                        producer,
                        target,
                        value,
                        message.key(),
                        message.partition() or 0,
                        message.timestamp()[1],
                        headers,
                        on_delivery,
                    )
                    report.copied[target] = report.copied.get(target, 0) + 1
    remaining = producer.flush(60)
    if remaining or report.failed:
        raise ReplayError(
            f"republish incomplete: {report.failed} record(s) failed, {remaining} unsettled "
            f"({'; '.join(failures) or 'timeout'})"
        )
    return report


def _selected(
    decoder: FastDecoder, selection: Selection, window: Window, value: bytes, events: bool
) -> bool:
    """Whether to copy a value: its envelope (or heartbeat's node) against the selection.

    Undecodable values are copied when no node/stream/time filter applies (a plain copy
    must not lose them), and skipped otherwise (they cannot be matched)."""
    if events and selection.skips_value(value):
        return False
    try:
        _, record = decoder.decode(value, 1)
    except SingleObjectError:
        return selection.nodes is None and selection.streams is None and not window.has_time
    envelope = record.get("envelope")
    if envelope is None:  # a heartbeat or dead letter: node_id is its first field
        return selection.nodes is None or record.get("node_id") in selection.nodes
    if not selection.keeps(envelope["node_id"], envelope["stream"]):
        return False
    return not window.has_time or window.admits(envelope["ts_wall_ns"])


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    partition: int,
    timestamp_ms: int,
    headers: Headers,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    while True:
        try:
            producer.produce(
                topic,
                value,
                key,
                partition=partition,
                timestamp=timestamp_ms,
                headers=headers,
                on_delivery=on_delivery,
            )
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)
