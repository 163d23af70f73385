"""The ledger: per stream, what fired, what arrived, and what was lost where.

Three places count, each what only it can see:

* the source (BPF counters): how often each probe fired and how often the ring was full;
* the native encoder: records captured, dead-lettered, dropped for backpressure;
* the Kafka sink: records produced, acknowledged, failed.

A heartbeat joins them into one record per stream with the invariant
``fired == acked + in_doubt + in_flight + lost.kernel + lost.bridge + lost.producer +
lost.node``. In the SESSION_END heartbeat nothing is in flight, so a consumer can check,
from the topics alone, that the records it holds plus the losses stated equal what
fired. ``in_doubt`` is the one count the bridge cannot settle itself: records that timed
out after they were sent, which the broker may have written. Claiming them lost would be
false whenever it did, so the ledger says "in doubt" and the reader settles each by
finding its seq or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge import __version__
from bridge.codec import _native
from bridge.events.envelope import LOSS_STAGES, LossStage, SourceKind
from bridge.sinks.kafka.producer import KafkaSink


@dataclass(frozen=True)
class Stream:
    """What one seq counts: its sequence id in the encoder, its name (the envelope's
    ``stream``), and the record types (tp_ids) it produces."""

    sequence: int
    name: str
    record_types: tuple[int, ...]

    def total(self, by_record_type: Sequence[int]) -> int:
        """This stream's share of a per-record-type (tp_id) counter."""
        return sum(by_record_type[t] for t in self.record_types)


@dataclass(frozen=True)
class SourceCounts:
    """What the source knows of one stream: hits and losses before the bridge saw them."""

    fired: int
    lost_kernel: int = 0
    lost_node: int = 0


@dataclass(frozen=True)
class StreamLedger:
    """One stream's books at one moment."""

    stream: str
    fired: int
    captured: int
    produced: int
    acked: int
    dead_lettered: int
    last_seq: int
    lost: dict[str, int]
    in_doubt: int = 0

    @property
    def in_flight(self) -> int:
        """Fired but neither acknowledged, in doubt nor lost yet (in the ring or the
        producer queue)."""
        return self.fired - self.acked - self.in_doubt - sum(self.lost.values())

    def to_avro(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "fired": self.fired,
            "captured": self.captured,
            "produced": self.produced,
            "acked": self.acked,
            "in_flight": self.in_flight,
            "dead_lettered": self.dead_lettered,
            "last_seq": self.last_seq,
            "lost": dict(self.lost),
            "in_doubt": self.in_doubt,
        }


def heartbeat_record(
    *,
    node_id: str,
    source: SourceKind,
    session_id: str,
    heartbeat_seq: int,
    final: bool,
    streams: list[dict[str, Any]],
    node_pid: int | None = None,
    node_endpoint: str | None = None,
    unattributed_dead_letters: int = 0,
    attach_delay_ns: int | None = None,
) -> dict[str, Any]:
    """One ``.bridge`` ledger record (the Heartbeat schema's fields), from books already
    in their Avro shape (:meth:`StreamLedger.to_avro`). The benchmark and the tests'
    forger write their ledgers through this too, so they cannot drift from the bridge's."""
    return {
        "node_id": node_id,
        "source": source.name,
        "session_id": session_id,
        "heartbeat_seq": heartbeat_seq,
        "kind": "SESSION_END" if final else "PERIODIC",
        "ts_wall_ns": time.time_ns(),
        "bridge_version": __version__,
        "node_pid": node_pid,
        "node_endpoint": node_endpoint,
        "streams": streams,
        "unattributed_dead_letters": unattributed_dead_letters,
        "attach_delay_ns": attach_delay_ns,
    }


class SessionLedger:
    """Books for one session of one source."""

    def __init__(
        self,
        *,
        node_id: str,
        source: SourceKind,
        session_id: str,
        streams: Sequence[Stream],
        encoder: _native.Encoder,
        sink: KafkaSink,
        source_counts: Callable[[], dict[int, SourceCounts]],
        node_pid: int | None,
        node_endpoint: str | None,
        attach_delay_ns: int | None = None,
    ) -> None:
        self.node_id = node_id
        self.source = source
        self.session_id = session_id
        self.stream_list = tuple(streams)
        self._encoder = encoder
        self._sink = sink
        self._source_counts = source_counts
        self.node_pid = node_pid
        self.node_endpoint = node_endpoint
        self.attach_delay_ns = attach_delay_ns
        self.heartbeats = 0
        self.unattributed_dead_letters = 0

    def streams(self) -> list[StreamLedger]:
        """Read every counter. Bridge-side counts are read before the source's, so a hit
        counted by the bridge was already counted as fired (in_flight never goes negative).

        A source that cannot count firings itself (IPC: the node does not number its
        events) is covered by the encoder: it numbers each stream contiguously, counting
        every event the node reports it dropped, so its last seq is what fired."""
        bridge_side = {s.sequence: self._encoder.counters(s.sequence) for s in self.stream_list}
        delivery = self._sink.counts()
        source = self._source_counts()
        out = []
        for stream in self.stream_list:
            captured, last_seq, dead, _pending, _kernel_seen, bridge, producer, node_seen = (
                bridge_side[stream.sequence]
            )
            counts = source.get(stream.sequence) or SourceCounts(fired=last_seq)
            lost = dict.fromkeys(LOSS_STAGES, 0)
            lost[LOSS_STAGES[LossStage.KERNEL]] = counts.lost_kernel
            lost[LOSS_STAGES[LossStage.BRIDGE]] = bridge
            lost[LOSS_STAGES[LossStage.PRODUCER]] = producer
            lost[LOSS_STAGES[LossStage.NODE]] = max(counts.lost_node, node_seen)
            out.append(
                StreamLedger(
                    stream=stream.name,
                    fired=counts.fired,
                    captured=captured,
                    produced=stream.total(delivery.produced),
                    acked=stream.total(delivery.acked),
                    dead_lettered=dead,
                    last_seq=last_seq,
                    lost=lost,
                    in_doubt=stream.total(delivery.in_doubt),
                )
            )
        return out

    def heartbeat(self, final: bool) -> tuple[dict[str, Any], list[StreamLedger]]:
        """The next heartbeat record (and the books it was made from)."""
        self.heartbeats += 1
        books = self.streams()
        record = heartbeat_record(
            node_id=self.node_id,
            source=self.source,
            session_id=self.session_id,
            heartbeat_seq=self.heartbeats,
            final=final,
            streams=[book.to_avro() for book in books],
            node_pid=self.node_pid,
            node_endpoint=self.node_endpoint,
            unattributed_dead_letters=self.unattributed_dead_letters,
            attach_delay_ns=self.attach_delay_ns,
        )
        return record, books
