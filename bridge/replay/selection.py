"""Which records a replay wants: nodes, streams (event types), and the topics they live in.

Everything here comes from the committed schemas, the consumer's contract: each event
schema names its tracepoint (``tracebridge.tracepoint``, the envelope's ``stream``) and
its subsystem (the namespace ``tracebridge.<subsystem>``, the topic ``<prefix>.<subsystem>``).
So a stream selection also says which topics to read, and which single-object
fingerprints to skip without decoding.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.codec.single_object import MAGIC, SchemaStore
from bridge.replay.kafka_range import ReplayError
from bridge.sinks.kafka.topics import bridge_topic, event_topic

TRACEPOINT_PROPERTY = "tracebridge.tracepoint"


@dataclass(frozen=True)
class EventType:
    """One event record type as the committed schemas describe it."""

    stream: str  # e.g. "net:inbound_message"
    record: str  # e.g. "tracebridge.net.InboundMessage"
    subsystem: str  # e.g. "net": the topic is <prefix>.net
    fingerprint: bytes


def event_types(store: SchemaStore) -> list[EventType]:
    """Every committed event schema (the bridge's own records have no tracepoint)."""
    out = []
    for name in store.names():
        known = store.by_name(name)
        stream = known.definition.get(TRACEPOINT_PROPERTY)
        if not stream:
            continue
        subsystem = str(known.definition["namespace"]).rsplit(".", 1)[-1]
        out.append(EventType(str(stream), name, subsystem, known.fingerprint))
    return out


def match_streams(patterns: Iterable[str], store: SchemaStore) -> frozenset[str]:
    """Stream names matching globs (``net:*_message``) or subsystem names (``mempool``)."""
    known = sorted({t.stream for t in event_types(store)})
    chosen: set[str] = set()
    for pattern in patterns:
        glob = f"{pattern}:*" if ":" not in pattern and "*" not in pattern else pattern
        hits = fnmatch.filter(known, glob)
        if not hits:
            raise ReplayError(f"no event type matches {pattern!r} (known: {', '.join(known)})")
        chosen.update(hits)
    return frozenset(chosen)


def event_topics(
    prefix: str, store: SchemaStore, streams: Iterable[str] | None = None
) -> list[str]:
    """The event topics of ``prefix`` that can hold ``streams`` (all when None)."""
    wanted = None if streams is None else set(streams)
    subsystems = {t.subsystem for t in event_types(store) if wanted is None or t.stream in wanted}
    return [event_topic(prefix, s) for s in sorted(subsystems)]


def ledger_topic(prefix: str) -> str:
    """Where the heartbeats of ``prefix``'s sessions are."""
    return bridge_topic(prefix)


def prefix_of(topic: str) -> str:
    """``tracebridge.net`` -> ``tracebridge`` (the part before the subsystem)."""
    if "." not in topic:
        raise ReplayError(f"topic {topic!r} is not <prefix>.<subsystem>")
    return topic.rsplit(".", 1)[0]


class Selection:
    """The nodes and streams a read keeps (None: all)."""

    def __init__(
        self,
        store: SchemaStore,
        nodes: Sequence[str] | None = None,
        streams: Iterable[str] | None = None,
    ) -> None:
        self.nodes = frozenset(nodes) if nodes else None
        self.streams = frozenset(streams) if streams is not None else None
        self.skip_fingerprints: frozenset[bytes] = frozenset()
        if self.streams is not None:
            self.skip_fingerprints = frozenset(
                t.fingerprint for t in event_types(store) if t.stream not in self.streams
            )

    def skips_value(self, value: bytes) -> bool:
        """True for a single-object value of an event type not selected (no decode)."""
        return value[2:10] in self.skip_fingerprints and value[:2] == MAGIC

    def keeps(self, node_id: str, stream: str | None) -> bool:
        if self.nodes is not None and node_id not in self.nodes:
            return False
        return stream is None or self.streams is None or stream in self.streams
