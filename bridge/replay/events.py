"""The typed values a replay yields: events, the bridge's own records, undecodable ones.

An :class:`Event` is one decoded event record: its Avro record name, its envelope and
its own fields, plus where Kafka kept it. It is built once per record on the hot path
(hundreds of thousands per second), so it holds only seven references and reads the
envelope's fields through properties rather than copying them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

StreamKey = tuple[str, str, str]  # (node_id, session_id, stream): what seq numbers


class LossTotals(TypedDict):
    """Running loss totals of a stream, by stage (README, "Envelope and loss semantics")."""

    kernel: int
    bridge: int
    producer: int
    node: int


class Envelope(TypedDict):
    """The envelope every event record starts with (bridge/events/envelope.py)."""

    node_id: str
    source: str
    session_id: str
    stream: str
    seq: int
    ts_mono_ns: int
    ts_wall_ns: int
    lost_before: int
    lost: LossTotals


@dataclass(frozen=True, slots=True)
class Event:
    """One event record, decoded. ``fields`` holds the record's fields but the envelope."""

    record: str  # Avro full name, e.g. "tracebridge.net.InboundMessage"
    envelope: Envelope
    fields: dict[str, Any]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def node_id(self) -> str:
        return self.envelope["node_id"]

    @property
    def session_id(self) -> str:
        return self.envelope["session_id"]

    @property
    def stream(self) -> str:
        return self.envelope["stream"]

    @property
    def seq(self) -> int:
        return self.envelope["seq"]

    @property
    def ts_wall_ns(self) -> int:
        return self.envelope["ts_wall_ns"]

    @property
    def ts_mono_ns(self) -> int:
        return self.envelope["ts_mono_ns"]

    @property
    def lost_before(self) -> int:
        return self.envelope["lost_before"]

    @property
    def key(self) -> StreamKey:
        """The sequence this event belongs to."""
        envelope = self.envelope
        return (envelope["node_id"], envelope["session_id"], envelope["stream"])

    def value(self) -> dict[str, Any]:
        """The record as fastavro returns it (envelope first), e.g. to re-encode it."""
        return {"envelope": self.envelope, **self.fields}


@dataclass(frozen=True, slots=True)
class BridgeRecord:
    """A heartbeat or dead letter from ``<prefix>.bridge`` / ``<prefix>.deadletter``."""

    record: str  # "tracebridge.bridge.Heartbeat" or "tracebridge.bridge.DeadLetter"
    value: dict[str, Any]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record no committed schema (nor the registry) decodes; kept so it is counted."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    error: str


HEARTBEAT = "tracebridge.bridge.Heartbeat"
DEAD_LETTER = "tracebridge.bridge.DeadLetter"
BRIDGE_RECORDS = frozenset({HEARTBEAT, DEAD_LETTER})
