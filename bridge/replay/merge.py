"""Interleaving several nodes' events by event time, for multi-node analysis.

Questions like "how long after node A did node B see this block?" need the events of
several nodes on one time line. Kafka gives no such order: each node's records sit in
the partition its key hashes to, in the order its bridge produced them, and a consumer
fetches partitions in whatever order the brokers answer. So :func:`merge_by_time`
sorts by the envelope's ``ts_wall_ns`` (ties by node, session, stream, seq, so the
output is the same on every run). It holds the events it merges in memory: merge a
time range or a few streams, not a whole cluster's history. :func:`first_seen` and
:func:`propagation_delays` answer the usual question directly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from bridge.replay.events import Event


def time_key(event: Event) -> tuple[int, str, str, str, int]:
    envelope = event.envelope
    return (
        envelope["ts_wall_ns"],
        envelope["node_id"],
        envelope["session_id"],
        envelope["stream"],
        envelope["seq"],
    )


def merge_by_time(events: Iterable[Event]) -> list[Event]:
    """All ``events`` in event-time order (stable and deterministic)."""
    return sorted(events, key=time_key)


def first_seen(
    events: Iterable[Event], key: Callable[[Event], Hashable | None]
) -> dict[Hashable, dict[str, int]]:
    """For each key (e.g. a txid), the earliest ``ts_wall_ns`` at which each node saw it.

    ``key`` returns None for events that do not matter (they are skipped).
    """
    seen: dict[Hashable, dict[str, int]] = {}
    for event in events:
        value = key(event)
        if value is None:
            continue
        nodes = seen.setdefault(value, {})
        ts = event.envelope["ts_wall_ns"]
        node = event.envelope["node_id"]
        if node not in nodes or ts < nodes[node]:
            nodes[node] = ts
    return seen


@dataclass(frozen=True)
class Delay:
    """How much later ``node`` saw ``key`` than the first node that saw it."""

    key: Hashable
    first_node: str
    node: str
    delay_ns: int


def propagation_delays(seen: dict[Hashable, dict[str, int]]) -> list[Delay]:
    """Per key and node, the delay after the first node (keys seen by one node only are
    left out: there is nothing to compare). Clock offsets between hosts are in it."""
    out = []
    for value, nodes in seen.items():
        if len(nodes) < 2:
            continue
        first_node, first_ts = min(nodes.items(), key=lambda item: (item[1], item[0]))
        for node, ts in sorted(nodes.items()):
            if node != first_node:
                out.append(Delay(value, first_node, node, ts - first_ts))
    return out
