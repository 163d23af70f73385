"""The replay/audit benchmark: N realistic records into Kafka, then read them back.

Records are what a bridge writes: ring records laid out by :mod:`bridge.events.layout`,
encoded by the native encoder (envelope with seq and loss bookkeeping, then the event),
keyed by node, timestamped with the event time, for a mix of streams in several topics
(P2P messages, mempool, UTXO cache, blocks), with a kernel loss now and then (reported
in the next record's lost_before) and a SESSION_END ledger per node, so the audit has
real work and must pass.

Then, in this one process, against the real broker:

* **replay decode**: ``read_events`` over every event topic, each stream in seq order,
  each record decoded into an :class:`~bridge.replay.Event` (Kafka fetch, batch consume,
  decode, filter, reorder) -- records/s;
* the same with fastavro decoding every record (the path without the C decoder);
* JSON lines to /dev/null (replay with output);
* **audit**: read every event topic (envelopes) and the ledger, judge every stream.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bridge.codec.native import Encoder, configure
from bridge.codec.single_object import SchemaStore, committed_schemas
from bridge.config import KafkaConfig
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.envelope import LOSS_STAGES, SourceKind
from bridge.events.layout import HEADER, compute_layout, struct_format
from bridge.events.spec import EventSpec, Kind
from bridge.ledger import StreamLedger, heartbeat_record
from bridge.replay.api import ReadStats, read_events
from bridge.replay.audit import read_audit
from bridge.replay.selection import event_topics
from bridge.replay.writers import JsonLinesWriter
from bridge.sinks.kafka.topics import bridge_topic, ensure_topics, event_topic

log = logging.getLogger(__name__)

# Relative rates, roughly a busy node: P2P messages dominate, then UTXO cache churn.
STREAM_MIX: tuple[tuple[str, int], ...] = (
    ("net:inbound_message", 6),
    ("net:outbound_message", 6),
    ("mempool:added", 2),
    ("mempool:removed", 1),
    ("utxocache:add", 3),
    ("utxocache:spent", 3),
    ("validation:block_connected", 1),
)
LOSS_EVERY = 50_000  # a kernel loss per stream now and then (reported in lost_before)
HEARTBEAT = "tracebridge.bridge.Heartbeat"


PAYLOAD_SIZE = 36  # an inv of one entry: typical, and below any capture limit


def _field_value(spec: EventSpec, slot_name: str, kind: Kind, i: int, size: int) -> Any:
    if kind is Kind.CSTR:
        field_spec = spec.field_named(slot_name)
        if field_spec.enum is not None:
            text = str(field_spec.enum.values[0][0])
        else:
            text = {"peer_addr": "203.0.113.7:8333", "msg_type": "inv"}.get(slot_name, "reason")
        return text.encode()[: size - 1].ljust(size, b"\0")
    if kind is Kind.HASH32:
        return i.to_bytes(32, "little")
    if kind is Kind.BOOL:
        return i & 1
    if kind is Kind.PAYLOAD or (
        spec.payload_field is not None and slot_name == spec.payload_field.length_of
    ):
        return PAYLOAD_SIZE  # captured length, and the full size: nothing truncated
    return (i * 7919) % 1_000_003


def ring_record(spec: EventSpec, i: int) -> bytearray:
    """A ring record of ``spec`` as the BPF program lays it out (header patched later)."""
    layout = compute_layout(spec)
    items = [
        _field_value(spec, slot.field.name, slot.field.kind, i, slot.size) for slot in layout.slots
    ]
    payload = os.urandom(PAYLOAD_SIZE) if spec.payload_field is not None else b""
    fixed = struct.pack(struct_format(layout), 0, 0, 0, spec.tp_id, 0, 0, *items)
    return bytearray(fixed + payload)


@dataclass
class NodeBooks:
    """What one node's session fired and lost, per stream (its SESSION_END ledger)."""

    node: str
    session_id: str
    fired: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    kernel: dict[str, int] = field(default_factory=dict)

    def heartbeat(self) -> dict[str, Any]:
        streams = []
        for stream, fired in sorted(self.fired.items()):
            lost = dict.fromkeys(LOSS_STAGES, 0)
            lost["kernel"] = self.kernel.get(stream, 0)
            delivered = self.delivered.get(stream, 0)
            book = StreamLedger(
                stream=stream,
                fired=fired,
                captured=delivered,
                produced=delivered,
                acked=delivered,
                dead_lettered=0,
                last_seq=fired,
                lost=lost,
            )
            streams.append(book.to_avro())
        return heartbeat_record(
            node_id=self.node,
            source=SourceKind.USDT,
            session_id=self.session_id,
            heartbeat_seq=1,
            final=True,
            streams=streams,
        )


def produce_records(
    bootstrap: str, prefix: str, records: int, nodes: int, store: SchemaStore
) -> list[NodeBooks]:
    """Write ``records`` events spread over ``nodes`` nodes and the streams of STREAM_MIX."""
    config = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix)
    subsystems = sorted({BY_NAME[s].subsystem for s, _ in STREAM_MIX})
    ensure_topics(
        config, [*(event_topic(prefix, s) for s in subsystems), bridge_topic(prefix)], 4 << 20
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    schedule = [stream for stream, weight in STREAM_MIX for _ in range(weight)]
    books = []
    per_node = records // nodes
    wall_offset = time.time_ns() - time.monotonic_ns()
    for n in range(nodes):
        node = f"bench-node-{n}"
        book = NodeBooks(node, str(uuid.uuid4()))
        encoder = Encoder()
        configure(encoder, EVENTS, store)
        encoder.set_session(node, SourceKind.USDT, book.session_id, wall_offset)
        templates = {s: ring_record(BY_NAME[s], n) for s in dict(STREAM_MIX)}
        topics = {s: event_topic(prefix, BY_NAME[s].subsystem) for s in templates}
        key = node.encode()
        produce = producer.produce
        ktime = time.monotonic_ns() - 60 * 10**9
        count = per_node if n < nodes - 1 else records - per_node * (nodes - 1)
        for i in range(count):
            stream = schedule[i % len(schedule)]
            fired = book.fired.get(stream, 0) + 1
            lost_before = 0
            if fired % LOSS_EVERY == 0:  # this one's ring was full: the next reports it
                book.kernel[stream] = book.kernel.get(stream, 0) + 1
                fired += 1
                lost_before = 1
            book.fired[stream] = fired
            book.delivered[stream] = book.delivered.get(stream, 0) + 1
            ktime += 1_000
            raw = templates[stream]
            HEADER.pack_into(raw, 0, fired, ktime, lost_before, BY_NAME[stream].tp_id, 0, 0)
            (good,), _ = encoder.encode_one(raw)
            while True:
                try:
                    produce(topics[stream], good[1], key, timestamp=good[2])
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 20_000 == 0:
                producer.poll(0)
        producer.produce(bridge_topic(prefix), store.encode(HEARTBEAT, book.heartbeat()), key)
        books.append(book)
    if producer.flush(120):
        raise RuntimeError("the benchmark's records were not all acknowledged")
    return books


@dataclass
class ReplayBenchResult:
    records: int
    produce_s: float
    replay_s: float
    replay_unordered_s: float
    replay_fastavro_s: float | None
    jsonl_s: float | None
    audit_read_s: float
    audit_judge_s: float
    audit_ok: bool

    @property
    def audit_s(self) -> float:
        return self.audit_read_s + self.audit_judge_s


def _timed(run: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    count = run()
    return time.perf_counter() - began, count


def run_replay_bench(
    bootstrap: str,
    records: int,
    *,
    nodes: int = 2,
    baseline: bool = True,
    jsonl: bool = True,
    keep: bool = False,
) -> ReplayBenchResult:
    store = committed_schemas()
    prefix = f"benchreplay{int(time.time())}"
    began = time.perf_counter()
    produce_records(bootstrap, prefix, records, nodes, store)
    produce_s = time.perf_counter() - began
    topics = event_topics(prefix, store)

    def count_events(**options: Any) -> int:
        return sum(1 for _ in read_events(bootstrap, topics, store=store, **options))

    try:
        replay_s, seen = _timed(count_events)
        if seen != records:
            raise RuntimeError(f"replay read {seen} of {records} records")
        unordered_s, _ = _timed(lambda: count_events(ordered=False))
        fastavro_s = None
        if baseline:
            fastavro_s, _ = _timed(lambda: count_events(native_decode=False))
        jsonl_s = None
        if jsonl:
            with open(os.devnull, "w") as sink:
                writer = JsonLinesWriter(sink)

                def write_all() -> int:
                    stats = ReadStats()
                    for event in read_events(bootstrap, topics, store=store, stats=stats):
                        writer.write(event)
                    return stats.events

                jsonl_s, _ = _timed(write_all)
        began = time.perf_counter()
        audit = read_audit(bootstrap, prefix, store=store)
        read_s = time.perf_counter() - began
        began = time.perf_counter()
        report = audit.judge(require_closed=True)
        judge_s = time.perf_counter() - began
    finally:
        if not keep:
            _delete_topics(bootstrap, [*topics, bridge_topic(prefix)])
    return ReplayBenchResult(
        records, produce_s, replay_s, unordered_s, fastavro_s, jsonl_s, read_s, judge_s, report.ok
    )


def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=15).topics)
    doomed = [t for t in topics if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


def format_result(result: ReplayBenchResult) -> str:
    """The table the README quotes."""
    n = result.records

    def rate(seconds: float | None) -> str:
        return "-" if seconds is None else f"{n / seconds:,.0f}"

    def secs(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds:.2f}"

    rows = [
        ("replay decode, seq order (C decoder)", secs(result.replay_s), rate(result.replay_s)),
        (
            "replay decode, Kafka order",
            secs(result.replay_unordered_s),
            rate(result.replay_unordered_s),
        ),
        ("replay decode, fastavro", secs(result.replay_fastavro_s), rate(result.replay_fastavro_s)),
        ("replay to JSON lines (/dev/null)", secs(result.jsonl_s), rate(result.jsonl_s)),
        ("audit: read envelopes + ledger", secs(result.audit_read_s), rate(result.audit_read_s)),
        ("audit: judge every stream", secs(result.audit_judge_s), "-"),
        ("audit total", secs(result.audit_s), rate(result.audit_s)),
    ]
    lines = [
        f"{n:,} records produced in {result.produce_s:.1f} s; audit "
        f"{'passed' if result.audit_ok else 'FAILED'}",
        "| what | seconds | records/s |",
        "|---|---|---|",
    ]
    lines.extend(f"| {what} | {seconds} | {per_s} |" for what, seconds, per_s in rows)
    return "\n".join(lines)
