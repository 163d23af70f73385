"""What the emulated IPC node says it did: the JSON report and the JSON-lines record.

The node writes both (``--report``, ``--record``); the wrapper and the tests read them
back with the types here. Counts are exact, so a client can check
``received + dropped == offered`` per subscription.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from bridge.emulator.ipc_scenario import StreamName

__all__ = [
    "IpcReport",
    "RecordLine",
    "StageStats",
    "StreamStats",
    "SubscriptionStats",
    "read_ipc_records",
]


# --------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """One subscription (a handle* / trace* call) and what it got.

    ``offered``: events generated while subscribed (after the net filters).
    ``sent``: events in callback calls that completed. ``dropped``: net events the
    full queue turned away; ``dropped_reported``: the sum of ``dropped`` over the
    batches the client acknowledged. ``discarded``: queued events never sent (the
    subscription ended first). ``failed``: events in a call that raised (the node then
    drops the subscriber, as the prototype does). ``interrupted``: events in a call
    still in flight when the node shut down; the client may or may not have them.
    Always ``offered == sent + dropped + discarded + failed + interrupted``.
    ``ended``: destroy, disconnect, released (last Handler reference dropped),
    connection_closed, failed, shutdown, or None if still subscribed.
    """

    id: int
    stream: StreamName
    method: str
    connection: int
    offered: int
    sent: int
    dropped: int
    dropped_reported: int
    discarded: int
    failed: int
    interrupted: int
    batches: int
    calls: int
    ended: str | None
    callback_destroyed: bool
    error: str | None
    options: dict[str, int | bool] | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SubscriptionStats:
        return cls(**{k: d[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class StreamStats:
    """One stream: what it generated, and the sums over its subscriptions.

    ``generated`` counts the scripted events whether anyone listened or not;
    ``malformed`` the extra bad values of ``--malformed``, which subscribers are
    offered (and counted in ``offered``/``sent``) on top. ``unsubscribes`` counts the
    subscriptions that ended before shutdown (destroy, disconnect, released,
    connection_closed, failed). ``events_per_s`` is ``sent`` over ``elapsed_s``, the
    time from the stream's start until it ended and its queues drained.
    """

    generated: int
    offered: int
    sent: int
    dropped: int
    dropped_reported: int
    discarded: int
    failed: int
    interrupted: int
    malformed: int
    batches: int
    calls: int
    subscriptions: int
    unsubscribes: int
    elapsed_s: float
    events_per_s: float | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StreamStats:
        return cls(**{k: d[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class StageStats:
    """One ping stage as run. ``cpu_us_per_event``: node process CPU / events sent."""

    rate: float
    seconds: float
    pings: int
    events: int
    sent: int
    dropped: int
    batches: int
    elapsed_s: float
    cpu_s: float
    events_per_s: float
    cpu_us_per_event: float | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StageStats:
        return cls(**{k: d[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class IpcReport:
    """The JSON report written at exit (``--report``); exact counts."""

    pid: int
    version: str
    socket: str
    values: str
    seed: int
    ping: bool
    interrupted: bool
    elapsed_s: float
    cpu_s: float
    connections: int
    streams: dict[str, StreamStats]
    subscriptions: list[SubscriptionStats]
    stages: list[StageStats] = field(default_factory=list)
    garbage_connections: int = 0
    tip_height: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IpcReport:
        """Parse; ValueError if the report lacks a field."""
        try:
            return cls(
                pid=int(d["pid"]),
                version=str(d["version"]),
                socket=str(d["socket"]),
                values=str(d["values"]),
                seed=int(d["seed"]),
                ping=bool(d["ping"]),
                interrupted=bool(d["interrupted"]),
                elapsed_s=float(d["elapsed_s"]),
                cpu_s=float(d["cpu_s"]),
                connections=int(d["connections"]),
                streams={k: StreamStats.from_json(v) for k, v in d["streams"].items()},
                subscriptions=[SubscriptionStats.from_json(s) for s in d["subscriptions"]],
                stages=[StageStats.from_json(s) for s in d["stages"]],
                garbage_connections=int(d["garbage_connections"]),
                tip_height=int(d["tip_height"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed IPC emulator report: {exc!r}") from exc

    def subscription(self, sub_id: int) -> SubscriptionStats:
        """The subscription with this id (KeyError if none)."""
        for s in self.subscriptions:
            if s.id == sub_id:
                return s
        raise KeyError(sub_id)


# --------------------------------------------------------------------------------------
# Record (--record): one JSON object per line.
# --------------------------------------------------------------------------------------

RecordLine: TypeAlias = dict[str, Any]
"""One record line. ``kind`` is one of:

``event``: one event the client acknowledged (sent in a call that completed), with
``stream``, ``sub`` (subscription id), ``seq`` (per stream), ``method`` and the exact
values under the capnp field names. Hashes and bytes are hex of the bytes on the wire
(internal byte order, not reversed); Text that is not UTF-8 is ``{"hex": ...}``.
Net events also carry ``batch``. Chain transactions carry the emulator's own
``txid``/``wtxid`` (hex, internal order), ``vsize`` and ``weight``. A deliberately
malformed value has ``"malformed": true``.

``batch``: one NetMessageTrace.messages call: ``sub``, ``batch``, ``count``, ``dropped``.
``subscribe`` / ``unsubscribe``: ``sub``, ``stream``, ``method``, ``connection`` /
``reason``. ``failed``: a callback call that raised: ``sub``, ``error``, ``events``.
``garbage``: ``connection``, ``bytes`` (hex).
"""


def read_ipc_records(path: Path) -> Iterator[RecordLine]:
    """Yield the record's lines as dicts, in the order the node wrote them."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                if not isinstance(obj, dict) or "kind" not in obj:
                    raise ValueError(f"record line without kind: {line[:120]!r}")
                yield obj
