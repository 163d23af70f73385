"""Connections and subscriptions of the emulated node, and its record writer.

A :class:`Connection` holds what libmultiprocess keeps per connection: the ThreadMap
the client passed to ``Init.construct`` (the node makes client threads through it) and
the threads the client made through the node's ThreadMap (a context naming any other
thread is refused). A :class:`Subscription` is one ``trace*``/``handle*`` call: its
callback capability, net options and queue, and the exact counts the report shows.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bridge.emulator.ipc_capnp import INVALID_THREAD, NodeError, node_thread_name, serve
from bridge.emulator.ipc_net import NetOptions, NetQueue, PingBatchTemplate
from bridge.emulator.ipc_scenario import StreamName
from bridge.emulator.ipc_servers import ThreadImpl

if TYPE_CHECKING:
    from bridge.emulator.ipc_runtime import Runtime

__all__ = [
    "CALLER_THREAD",
    "DESTROY_AFTER",
    "GARBAGE",
    "Connection",
    "Recorder",
    "StreamState",
    "Subscription",
]


# Bytes written by --garbage-after: a segment count of 0xDEADBEEF + 1 is no message.
GARBAGE = bytes.fromhex("efbeadde") * 16
# The node thread that would make each stream's callbacks (for the client thread's name).
CALLER_THREAD: dict[str, str] = {
    "utxo": "b-msghand",
    "net": "b-nettrace",
    "chain": "b-scheduler",
    "node_notifications": "b-msghand",
}
# Reasons after which the node destroys the callback object (libmultiprocess's
# ProxyClient destructor calls destroy()); not after the connection went away.
DESTROY_AFTER = {"destroy", "disconnect", "released", "shutdown", "failed"}


class Recorder:
    """JSON lines of everything sent (``--record``)."""

    def __init__(self, path: Path) -> None:
        self._f: IO[str] = path.open("w", encoding="utf-8", buffering=1 << 20)

    def write(self, line: dict[str, Any]) -> None:
        self._f.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._f.close()


@dataclass(eq=False)
class Subscription:
    """One subscription; counts as in :class:`~bridge.emulator.ipc_report.SubscriptionStats`.

    ``idle`` is clear while a callback call is in flight (the node destroys the callback
    only after it).
    """

    id: int
    stream: StreamName
    method: str
    conn: Connection
    callback: Any
    opts: NetOptions | None = None
    queue: NetQueue | None = None
    client_thread: Any = None
    node_thread: Any = None
    offered: int = 0
    sent: int = 0
    dropped: int = 0
    dropped_reported: int = 0
    discarded: int = 0
    failed: int = 0
    interrupted: int = 0
    batches: int = 0
    calls: int = 0
    ended: str | None = None
    error: str | None = None
    callback_destroyed: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    template: PingBatchTemplate | None = None
    template_failed: bool = False

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stream": self.stream,
            "method": self.method,
            "connection": self.conn.id,
            "offered": self.offered,
            "sent": self.sent,
            "dropped": self.dropped,
            "dropped_reported": self.dropped_reported,
            "discarded": self.discarded,
            "failed": self.failed,
            "interrupted": self.interrupted,
            "batches": self.batches,
            "calls": self.calls,
            "ended": self.ended,
            "callback_destroyed": self.callback_destroyed,
            "error": self.error,
            "options": self.opts.as_dict() if self.opts else None,
        }


class Connection:
    """One client connection: its ThreadMap, the node threads it made, its subscriptions."""

    def __init__(self, rt: Runtime, conn_id: int, protocol: Any) -> None:
        self.rt = rt
        self.id = conn_id
        self.protocol = protocol
        self.client_thread_map: Any = None
        self.node_threads: dict[str, Any] = {}
        self.closed = False

    def new_node_thread(self, name: str) -> Any:
        """A Thread server for the node's ThreadMap (also used as callbackThread)."""
        thread_name = node_thread_name(name, self.rt.next_thread())
        server = serve(self.rt.schemas.proxy.Thread, ThreadImpl(thread_name))
        self.node_threads[thread_name] = server
        return server

    async def check_context(self, context: Any) -> None:
        """Reject a context whose thread this connection's ThreadMap did not make."""
        try:
            name = (await context.thread.getName()).result
        except Exception as exc:
            raise NodeError(INVALID_THREAD) from exc
        if name not in self.node_threads:
            raise NodeError(INVALID_THREAD)

    def lost(self) -> bool:
        """Whether the connection is closed or its transport already gone."""
        return self.closed or getattr(self.protocol, "transport", None) is None

    def write_garbage(self) -> bool:
        """Write GARBAGE after whatever Cap'n Proto already queued, then close."""
        transport = getattr(self.protocol, "transport", None)
        if transport is None or self.closed:
            return False
        transport.write(GARBAGE)
        transport.close()
        return True

    def close(self) -> None:
        transport = getattr(self.protocol, "transport", None)
        if transport is not None:
            transport.close()


@dataclass
class StreamState:
    """Per stream: events generated (whether or not anyone listened) and timing."""

    generated: int = 0
    malformed: int = 0
    started: float | None = None
    ended: float | None = None
    done: bool = False
