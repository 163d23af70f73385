"""Produce bridge-shaped records straight to Kafka, with losses placed exactly (tests only).

Events go through the real native encoder (ring record -> Avro single-object, with the
envelope and its loss bookkeeping), heartbeats through the committed schemas, so what
lands in the topics is byte for byte what a bridge writes; but the test decides every
seq, every lost_before and every ledger count, which is how gaps, duplicates and
ledger mismatches are forged on purpose.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.codec.native import Encoder, configure
from bridge.codec.single_object import SchemaStore, committed_schemas
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.envelope import LOSS_STAGES, LossStage, SourceKind
from bridge.events.spec import EventSpec, Kind
from bridge.ledger import heartbeat_record
from bridge.sinks.kafka.topics import bridge_topic, event_topic
from tests.support.raw_records import build_record

# Event times are ktime + this: the start of the previous hour. Recent, because the
# broker's retention (7 days) deletes a segment whose records' timestamps are older,
# at its next check, in the middle of a test; whole hours, so windows stay readable.
WALL_OFFSET_NS = (time.time_ns() // 3_600_000_000_000 - 1) * 3_600_000_000_000
HEARTBEAT = "tracebridge.bridge.Heartbeat"


def create_topics(bootstrap: str, topics: Iterable[str], partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=15).topics
    wanted = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
    if not wanted:
        return
    for future in admin.create_topics(wanted, operation_timeout=30).values():
        try:
            future.result()
        except KafkaException as error:
            if "already exists" not in str(error).lower():
                raise


def prefix_topics(prefix: str) -> list[str]:
    subsystems = sorted({spec.subsystem for spec in EVENTS})
    return [*(event_topic(prefix, s) for s in subsystems), bridge_topic(prefix)]


def default_values(spec: EventSpec, seq: int, **overrides: Any) -> dict[str, Any]:
    """Plausible argument values for any USDT tracepoint (varied by seq)."""
    out: dict[str, Any] = {}
    for f in spec.fields:
        kind = f.kind
        if kind in (Kind.I32, Kind.U32, Kind.I64, Kind.U64):
            out[f.name] = 0 if f.enum is not None else seq * 7 % 1000 + 1
        elif kind is Kind.BOOL:
            out[f.name] = seq % 2 == 0
        elif kind is Kind.HASH32:
            out[f.name] = seq.to_bytes(8, "little") + bytes(24)
        elif kind is Kind.CSTR:
            out[f.name] = "inbound" if f.enum is not None else f"v{seq % 10}"
        elif kind is Kind.PAYLOAD:
            out[f.name] = bytes([seq % 256]) * 16
    if spec.payload_field is not None:
        out[spec.payload_field.length_of or ""] = len(out[spec.payload_field.name])
    out.update(overrides)
    return out


@dataclass
class Book:
    """One stream's ledger entry as the forge keeps it."""

    fired: int = 0
    delivered: int = 0
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOSS_STAGES, 0))


class Forge:
    """One producer for a test's prefix; hands out sessions."""

    def __init__(self, bootstrap: str, prefix: str, partitions: int = 1) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        create_topics(bootstrap, prefix_topics(prefix), partitions)
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
        )
        self.store: SchemaStore = committed_schemas()

    def session(self, node: str, **kwargs: Any) -> ForgedSession:
        return ForgedSession(self, node, **kwargs)

    def produce(
        self, topic: str, value: bytes, key: bytes, ts_ms: int | None = None, **kw: Any
    ) -> None:
        self.producer.produce(topic, value, key, timestamp=ts_ms or 0, **kw)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


class ForgedSession:
    """One (node, session): events per stream and the heartbeats that close the books."""

    def __init__(
        self,
        forge: Forge,
        node: str,
        session_id: str | None = None,
        wall_offset_ns: int = WALL_OFFSET_NS,
    ) -> None:
        self.forge = forge
        self.node = node
        self.session_id = session_id or str(uuid.uuid4())
        self.encoder = Encoder()
        configure(self.encoder, EVENTS, forge.store)
        self.encoder.set_session(node, SourceKind.USDT, self.session_id, wall_offset_ns)
        self.books: dict[str, Book] = {}
        self.heartbeats = 0
        self.ktime_ns = 1_000_000_000
        self.values: list[bytes] = []  # every value produced, in order

    def event(
        self,
        stream: str,
        *,
        lost_before: int = 0,
        seq: int | None = None,
        produce: bool = True,
        ktime_ns: int | None = None,
        partition: int | None = None,
        **fields: Any,
    ) -> bytes:
        """The next event of ``stream``, ``lost_before`` kernel losses in front of it.

        ``seq`` forges a seq other than the next one (the ledger is not told);
        ``produce=False`` loses it at the producer stage (counted in the ledger only);
        ``partition`` puts it in that partition instead of the key's.
        """
        spec = BY_NAME[stream]
        book = self.books.setdefault(stream, Book())
        book.fired += lost_before
        book.lost["kernel"] += lost_before
        book.fired += 1
        self.ktime_ns = ktime_ns if ktime_ns is not None else self.ktime_ns + 1_000
        raw = build_record(
            spec,
            default_values(spec, book.fired, **fields),
            seq=seq if seq is not None else book.fired,
            ktime_ns=self.ktime_ns,
            lost_before=lost_before,
        )
        good, dead = self.encoder.encode_one(raw)
        assert good, dead
        _, value, ts_ms = good[0]
        if produce:
            where = {} if partition is None else {"partition": partition}
            self.forge.produce(
                event_topic(self.forge.prefix, spec.subsystem),
                value,
                self.node.encode(),
                ts_ms,
                **where,
            )
            book.delivered += 1
            self.values.append(value)
        else:
            book.lost["producer"] += 1
            self.encoder.add_loss(spec.tp_id, LossStage.PRODUCER, 1, False)
        return value

    def lose(self, stream: str, count: int, stage: str = "kernel") -> None:
        """Losses after the last record so far (in the ledger only, unless a later
        event reports them; use ``event(lost_before=...)`` for that)."""
        book = self.books.setdefault(stream, Book())
        book.fired += count
        book.lost[stage] += count

    def heartbeat(
        self,
        final: bool = True,
        overrides: dict[str, dict[str, Any]] | None = None,
        partition: int | None = None,
    ) -> dict[str, Any]:
        """Write the ledger; ``overrides[stream]`` replaces entries (to forge books);
        ``partition`` puts it in that partition instead of the key's."""
        self.heartbeats += 1
        streams = []
        for stream, book in sorted(self.books.items()):
            entry = {
                "stream": stream,
                "fired": book.fired,
                "captured": book.delivered,
                "produced": book.delivered + book.lost["producer"],
                "acked": book.delivered,
                "in_flight": 0,
                "dead_lettered": 0,
                "last_seq": book.fired,
                "lost": dict(book.lost),
            }
            entry.update((overrides or {}).get(stream, {}))
            streams.append(entry)
        record = heartbeat_record(
            node_id=self.node,
            source=SourceKind.USDT,
            session_id=self.session_id,
            heartbeat_seq=self.heartbeats,
            final=final,
            streams=streams,
        )
        value = self.forge.store.encode(HEARTBEAT, record)
        where = {} if partition is None else {"partition": partition}
        self.forge.produce(bridge_topic(self.forge.prefix), value, self.node.encode(), **where)
        return record
