"""The envelope every event record carries, and the bridge's own records.

Names follow Debezium's vocabulary where it fits (a *source* that captured the event,
*event time* separate from processing time, *heartbeats*). The envelope is what makes
loss provable from the topics alone: ``(node_id, session_id, stream)`` identifies a
sequence, ``seq`` numbers it contiguously from 1 at the probe (in BPF, before anything
can be lost), ``lost_before`` says how many of that sequence were lost right before
this record, and ``lost`` carries the running totals by stage. The heartbeat ledger on
``<prefix>.bridge`` closes the books: per stream, ``acked + lost == fired``.

The field order here is the wire order. The native encoder writes the envelope in this
order too; ``tests/unit/codec`` proves its output is byte-identical to fastavro's for
these schemas, which is how the C code is checked against this definition.
"""

from __future__ import annotations

import enum
from typing import Any

NAMESPACE = "tracebridge"

# Loss stages, in the order of the LossTotals record and of the native encoder's counters.
LOSS_STAGES: tuple[str, ...] = ("kernel", "bridge", "producer", "node")


class LossStage(enum.IntEnum):
    """Where an event was lost. The values index the native encoder's loss counters."""

    KERNEL = 0  # BPF ring buffer full: bpf_ringbuf_output() failed at the probe
    BRIDGE = 1  # dropped inside the bridge: undecodable record, or Kafka queue full
    PRODUCER = 2  # handed to Kafka but not acknowledged (rejected, or timed out)
    NODE = 3  # dropped by the node itself before delivery (IPC batch ``dropped``)


class SourceKind(enum.IntEnum):
    """Symbol indexes of the ``tracebridge.Source`` enum."""

    UNKNOWN = 0
    USDT = 1
    IPC = 2


SOURCE_SCHEMA: dict[str, Any] = {
    "type": "enum",
    "name": "Source",
    "namespace": NAMESPACE,
    "doc": "How the event was captured.",
    "symbols": ["UNKNOWN", "USDT", "IPC"],
    "default": "UNKNOWN",
}

LOSS_TOTALS_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "LossTotals",
    "namespace": NAMESPACE,
    "doc": "Events of one stream lost so far in this session, by the stage that lost them.",
    "fields": [
        {
            "name": "kernel",
            "type": "long",
            "doc": "Ring buffer full at the probe (the record was never written).",
        },
        {
            "name": "bridge",
            "type": "long",
            "doc": "Dropped in the bridge: undecodable (see the dead-letter topic), or "
            "backpressure.",
        },
        {
            "name": "producer",
            "type": "long",
            "doc": "Given to the Kafka producer but not acknowledged. Reported in heartbeats, "
            "since the lost record itself never arrives.",
        },
        {
            "name": "node",
            "type": "long",
            "doc": "Dropped by the node before delivery (IPC batches report this).",
        },
    ],
}

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Envelope",
    "namespace": NAMESPACE,
    "doc": "Who captured the event, where it sits in its sequence, and what was lost before it.",
    "fields": [
        {"name": "node_id", "type": "string", "doc": "Configured node name (default: host name)."},
        {"name": "source", "type": SOURCE_SCHEMA, "doc": "Capture method."},
        {
            "name": "session_id",
            "type": "string",
            "doc": "UUID, new whenever the bridge starts or attaches to a new node process.",
        },
        {
            "name": "stream",
            "type": "string",
            "doc": "The sequence this record belongs to, e.g. 'net:inbound_message'.",
        },
        {
            "name": "seq",
            "type": "long",
            "doc": "Position in (node_id, session_id, stream), contiguous from 1, assigned "
            "at the probe before anything can be lost.",
        },
        {
            "name": "ts_mono_ns",
            "type": "long",
            "doc": "CLOCK_MONOTONIC at the probe (bpf_ktime_get_ns), in ns.",
        },
        {
            "name": "ts_wall_ns",
            "type": "long",
            "doc": "Wall-clock time of the event in ns since the UNIX epoch, derived from "
            "ts_mono_ns with an offset sampled by the bridge.",
        },
        {
            "name": "lost_before",
            "type": "long",
            "doc": "Events of this stream lost immediately before this record (any stage "
            "known when it was encoded): the size of the seq gap in front of it.",
        },
        {"name": "lost", "type": LOSS_TOTALS_SCHEMA, "doc": "Running loss totals of the stream."},
    ],
}


def envelope_field() -> dict[str, Any]:
    """The envelope as the first field of an event record (full definition inline)."""
    return {"name": "envelope", "type": ENVELOPE_SCHEMA}


STREAM_LEDGER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "StreamLedger",
    "namespace": f"{NAMESPACE}.bridge",
    "doc": "Counts for one stream of one session. Invariant: fired == acked + in_doubt + "
    "in_flight + lost.kernel + lost.bridge + lost.producer + lost.node; in_flight is 0 in "
    "SESSION_END.",
    "fields": [
        {"name": "stream", "type": "string", "doc": "e.g. 'net:inbound_message'."},
        {
            "name": "fired",
            "type": "long",
            "doc": "Times the probe fired while attached (BPF counter), or events the node "
            "reported sending (IPC).",
        },
        {"name": "captured", "type": "long", "doc": "Records read from the ring or the socket."},
        {"name": "produced", "type": "long", "doc": "Records handed to the Kafka producer."},
        {"name": "acked", "type": "long", "doc": "Records Kafka acknowledged (acks=all)."},
        {"name": "in_flight", "type": "long", "doc": "Captured but not yet acked or lost."},
        {
            "name": "dead_lettered",
            "type": "long",
            "doc": "Undecodable records sent to the dead-letter topic (counted in lost.bridge).",
        },
        {"name": "last_seq", "type": "long", "doc": "Highest seq captured so far (0 if none)."},
        {"name": "lost", "type": LOSS_TOTALS_SCHEMA, "doc": "Losses by stage."},
        {
            "name": "in_doubt",
            "type": "long",
            "default": 0,
            "doc": "Records that timed out after they were sent to Kafka (librdkafka: "
            "possibly persisted): neither acknowledged nor known lost, since the broker may "
            "have written them. A reader settles each from the topic: its seq is there "
            "(delivered) or missing (lost at the producer stage).",
        },
    ],
}

HEARTBEAT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Heartbeat",
    "namespace": f"{NAMESPACE}.bridge",
    "doc": "The bridge's ledger, every few seconds and at the end of each session.",
    "tracebridge.stability": "stable",
    "fields": [
        {"name": "node_id", "type": "string", "doc": "Configured node name."},
        {"name": "source", "type": SOURCE_SCHEMA, "doc": "Capture method of this session."},
        {"name": "session_id", "type": "string", "doc": "The session the counts belong to."},
        {
            "name": "heartbeat_seq",
            "type": "long",
            "doc": "Position of this heartbeat in the session, from 1, so a missing one shows.",
        },
        {
            "name": "kind",
            "type": {
                "type": "enum",
                "name": "HeartbeatKind",
                "namespace": f"{NAMESPACE}.bridge",
                "symbols": ["UNKNOWN", "PERIODIC", "SESSION_END"],
                "default": "UNKNOWN",
            },
            "doc": "SESSION_END is the final, settled ledger of the session (nothing in flight).",
        },
        {"name": "ts_wall_ns", "type": "long", "doc": "When the ledger was read."},
        {"name": "bridge_version", "type": "string", "doc": "tracebridge version."},
        {
            "name": "node_pid",
            "type": ["null", "long"],
            "default": None,
            "doc": "PID of the traced node process (USDT).",
        },
        {
            "name": "node_endpoint",
            "type": ["null", "string"],
            "default": None,
            "doc": "Binary path (USDT) or socket path (IPC) of the node.",
        },
        {
            "name": "streams",
            "type": {"type": "array", "items": STREAM_LEDGER_SCHEMA},
            "doc": "One entry per stream attached in this session.",
        },
        {
            "name": "unattributed_dead_letters",
            "type": "long",
            "doc": "Undecodable records whose stream could not be determined.",
        },
        {
            "name": "attach_delay_ns",
            "type": ["null", "long"],
            "default": None,
            "doc": "From the node process's start to this session's probes being live "
            "(USDT; 10 ms resolution). What the node fired in that window was never "
            "observable, so it is in no count: this states how long the session was "
            "blind. Null where it cannot be known (IPC).",
        },
    ],
}

DEAD_LETTER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "DeadLetter",
    "namespace": f"{NAMESPACE}.bridge",
    "doc": "A record the bridge could not decode: raw bytes and the reason. Counted as "
    "lost.bridge in its stream's ledger.",
    "tracebridge.stability": "stable",
    "fields": [
        {"name": "node_id", "type": "string", "doc": "Configured node name."},
        {"name": "source", "type": SOURCE_SCHEMA, "doc": "Capture method."},
        {"name": "session_id", "type": "string", "doc": "Session the record arrived in."},
        {
            "name": "stream",
            "type": ["null", "string"],
            "default": None,
            "doc": "The stream, when the record header could be read.",
        },
        {
            "name": "seq",
            "type": ["null", "long"],
            "default": None,
            "doc": "The record's seq, when the header could be read.",
        },
        {"name": "ts_wall_ns", "type": "long", "doc": "When the bridge rejected the record."},
        {"name": "reason", "type": "string", "doc": "Why it could not be decoded."},
        {"name": "raw", "type": "bytes", "doc": "The record exactly as read."},
    ],
}
