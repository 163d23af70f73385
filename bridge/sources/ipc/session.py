"""One IPC connection as a source session.

pycapnp must run inside its KJ event loop (``asyncio.run(capnp.run(...))``), and the
node's callbacks arrive on it; the bridge's main loop (Kafka, heartbeats) is
synchronous. So a session owns a thread running the event loop, and the two meet in
the :class:`~bridge.sources.ipc.emitter.Emitter`: callbacks encode into it, ``drain()``
takes from it.

Start-up is in two steps because the envelope needs the session's streams before any
event is encoded. :meth:`connect` (from ``IpcSource.next_session``) connects, settles
the version and asks which interfaces the node offers; the streams follow from that.
:meth:`configure` (from the bridge, after ``set_session``) hands over the encoder; only
then does the session subscribe.

Ending: ``stop()`` unsubscribes (``Handler.destroy``) and closes; a connection that
dies (the node exited) ends the session too, and the bridge closes its books. Events
the node sent while no session was connected are unknown: none is invented. A node
that is shutting down says so first (``waitTipChanged`` returns no tip); the session
then stops following the tip and ends when the node closes the connection, at the end
of its shutdown, so the source's next attempt finds no dying node to connect to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import capnp

from bridge.codec import _native
from bridge.codec.capnp_table import list_table
from bridge.codec.native import field_rows
from bridge.codec.single_object import SchemaStore
from bridge.config import IpcSourceConfig
from bridge.errors import BridgeError, IpcConnectError
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import SourceKind
from bridge.events.layout import compute_layout
from bridge.events.spec import EventSpec
from bridge.ledger import SourceCounts, Stream
from bridge.sources.ipc import callbacks
from bridge.sources.ipc.connection import (
    Connection,
    check_version,
    detect_version,
    is_unimplemented,
    open_connection,
)
from bridge.sources.ipc.emitter import Emitter
from bridge.sources.ipc.polling import Poller, planned_snapshots
from bridge.sources.ipc.schemas import SchemaSet, load_schema_set
from bridge.sources.ipc.tip import follow_tip

log = logging.getLogger(__name__)

# Both NetMessage directions are one stream; its sequence id is outside the tp_id range
# of the catalogue's events (1..60) so it cannot collide with one.
NET_SEQUENCE = 100
NET_LIST = 1
NET_STREAM = "net:messages"
INBOUND, OUTBOUND = BY_NAME["net:inbound_message"], BY_NAME["net:outbound_message"]
# How long the session waits for the node before giving up on a connection attempt.
CONNECT_TIMEOUT_S = 15.0
# The echo that shows the connection is alive; a node that stops answering ends it.
LIVENESS_INTERVAL_S = 1.0
LIVENESS_TIMEOUT_S = 10.0
# How long unsubscribing may take at the end before the connection is just closed.
UNSUBSCRIBE_TIMEOUT_S = 3.0


def _ended(path: Path, error: BaseException) -> str:
    """A one-line reason: Cap'n Proto prefixes its C++ source location and appends a
    stack to its messages."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "disconnected" in text.lower():
        return f"The node at {path} closed the IPC connection."
    return f"The IPC connection to {path} ended: {text.rstrip('.')}."


def _callback_offer(spec: EventSpec) -> str | None:
    """Which offer (Init factory) a pushed IPC-only event comes through, if any."""
    if spec.ipc is None or spec.usdt or spec.ipc.polled:
        return None
    if spec.ipc.interface == "ChainNotifications":
        return "chain"
    if spec.ipc.interface.endswith("Callback"):
        return "node"
    if spec.ipc.interface == "Mining":
        return "tip"
    return None


class IpcSourceSession:
    """A :class:`~bridge.sources.base.SourceSession` over one Cap'n Proto connection."""

    kind = SourceKind.IPC
    node_pid: int | None = None
    source_thread_cpu_s = 0.0  # set when the event loop thread ends
    attach_delay_ns: int | None = None  # the node's start is not known over a socket

    def __init__(
        self, config: IpcSourceConfig, path: Path, reported: set[tuple[str, str]] | None = None
    ) -> None:
        self.session_id = str(uuid.uuid4())
        self.node_endpoint: str | None = str(path)
        self.config = config
        self.path = path
        self.streams: tuple[Stream, ...] = ()
        self.record_types: tuple[EventSpec, ...] = ()
        self.version: str = "unknown"
        # (version, interface) already reported as not offered: shared by the sessions of
        # one IpcSource, so a reconnect does not repeat the warnings.
        self._reported = reported if reported is not None else set()
        self.node_shutting_down = False  # the node said so (Mining.waitTipChanged: no tip)
        self._offers: dict[str, Any] = {}
        self._emitter: Emitter | None = None
        self._connected = threading.Event()
        self._configured = threading.Event()
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="ipc", daemon=True)

    # ------------------------------------------------------------------ bridge side
    def connect(self) -> None:
        """Connect and plan the streams; raise what went wrong (IpcConnectError...)."""
        self._thread.start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.stop()
            raise IpcConnectError(f"{self.path} did not answer within {CONNECT_TIMEOUT_S:.0f} s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error

    def configure(self, encoder: _native.Encoder, store: SchemaStore) -> None:
        """Teach the encoder this session's streams, then let the session subscribe."""
        for stream in self.streams:
            encoder.configure_sequence(stream.sequence, stream.name)
        for spec in self.record_types:
            framing = store.by_name(full_name(event_schema(spec))).header
            sequence = NET_SEQUENCE if spec in (INBOUND, OUTBOUND) else spec.tp_id
            rows = field_rows(compute_layout(spec)) if spec.usdt else []
            encoder.configure_stream(spec.tp_id, framing, sequence, 0, rows)
        emitter = Emitter(encoder, store, self.config.max_pending_records)
        if "net" in self._offers:
            table = list_table(INBOUND, self._net_message_schema(), "inbound", "timestampUs")
            emitter.net_list_id = NET_LIST
            # NetMessage.timestampUs is steady_clock microseconds: CLOCK_MONOTONIC in ns x1000.
            encoder.configure_capnp_list(
                NET_LIST, 0, table.selector_bit, INBOUND.tp_id, OUTBOUND.tp_id,
                table.timestamp_word, 1000, table.sources,
            )  # fmt: skip
        self._emitter = emitter
        self._configured.set()
        # "attached" must mean capture has started: wait until the node accepted every
        # subscription (or the session failed, which the bridge then sees as not alive).
        if not self._subscribed.wait(CONNECT_TIMEOUT_S) and not self._done.is_set():
            log.warning("Subscribing on %s took over %.0f s.", self.path, CONNECT_TIMEOUT_S)

    def alive(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout_s: float) -> None:
        if self._emitter is None:
            time.sleep(timeout_s)
            return
        if self._emitter.ready.wait(timeout_s):
            self._emitter.ready.clear()

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected]]:
        if self._emitter is None:
            return [], []
        return self._emitter.take(max_records)

    def stop(self) -> None:
        """Unsubscribe and close; the emitter keeps what arrived for the last drains."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(UNSUBSCRIBE_TIMEOUT_S + 5)

    def source_counts(self) -> dict[int, SourceCounts]:
        return {}  # the node does not number its events: the encoder's seq counts them

    def close(self) -> None:
        self.stop()

    # ------------------------------------------------------------------ event loop side
    def _thread_main(self) -> None:
        try:
            asyncio.run(capnp.run(self._main()))
        except BaseException as error:  # handed to the bridge thread
            if not isinstance(error, BridgeError):
                error = IpcConnectError(_ended(self.path, error))
            self._error = error
            if self._connected.is_set():
                # The node going away is how a node restart or stop looks from here.
                log.info("%s", error)
        finally:
            self.source_thread_cpu_s = time.thread_time()
            self._done.set()
            self._connected.set()  # wake connect() if it still waits

    async def _main(self) -> None:
        conn = await self._open()
        await self._probe(conn)
        self._plan()
        self._connected.set()
        while not self._configured.is_set():
            if self._stop.is_set():
                return
            await asyncio.sleep(0.01)
        assert self._emitter is not None
        handlers = await self._subscribe(conn, self._emitter)
        tasks = self._background(conn, self._emitter)
        self._subscribed.set()
        try:
            while not self._stop.is_set():
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await self._unsubscribe(conn, handlers)

    async def _open(self) -> Connection:
        """Connect with the right schema set: detect (or check) the node's version."""
        proposed = load_schema_set("proposed")
        conn = await asyncio.wait_for(open_connection(self.path, proposed), CONNECT_TIMEOUT_S)
        found = await detect_version(conn)
        check_version(self.config.version, found)
        self.version = found
        if found in ("v30", "v31"):
            conn = await open_connection(self.path, load_schema_set(found))
        return conn

    async def _probe(self, conn: Connection) -> None:
        """Which of the wanted interfaces the node offers (a factory it lacks answers
        UNIMPLEMENTED); the capabilities are kept for subscribing."""
        wanted = set(self.config.subscribe)
        factories = {
            "net": "makeNetTracing",
            "utxo": "makeUtxoTracing",
            "chain": "makeChain",
            "node": "makeNode",
            "tip": "makeMining",
        }
        methods = set(conn.schemas.init.Init.schema.method_names)
        poll = self.config.poll_interval_s > 0
        for stream, factory in factories.items():
            needed = stream in wanted or (poll and stream in ("chain", "node"))
            if not needed or factory not in methods:
                continue
            try:
                self._offers[stream] = (await getattr(conn.init, factory)(conn.context)).result
            except Exception as error:
                if not is_unimplemented(error):
                    raise
        if "tip" in self._offers:
            await self._check_mining(conn)
        offered = sorted(self._offers)
        if any(s in self._offers for s in ("net", "utxo", "chain", "node")):
            self.version = "proposed"
        for stream in sorted(wanted - set(self._offers)):
            if (self.version, stream) in self._reported:
                continue
            self._reported.add((self.version, stream))
            log.warning(
                "The node (%s) does not offer %r over IPC; skipping it.", self.version, stream
            )
        log.info("Connected to %s: it speaks %s; offers %s.", self.path, self.version, offered)
        self._schemas: SchemaSet = conn.schemas

    async def _check_mining(self, conn: Connection) -> None:
        """A node that is shutting down still accepts connections and answers Init, but
        its ``makeMining`` returns a null capability (C++ nullptr): no session is opened
        against it. The source retries until the node is gone and back."""
        try:
            await self._offers["tip"].isTestChain(conn.context)
        except Exception as error:
            if "null capability" not in str(error).lower():
                raise
            raise IpcConnectError(
                f"the node at {self.path} is shutting down (Init.makeMining returned no Mining)"
            ) from None

    def _plan(self) -> None:
        """Streams and record types from what the node offers and what was asked."""
        wanted = set(self.config.subscribe)
        streams: list[Stream] = []
        specs: list[EventSpec] = []

        def add(spec: EventSpec) -> None:
            streams.append(Stream(spec.tp_id, spec.name, (spec.tp_id,)))
            specs.append(spec)

        if "net" in self._offers and "net" in wanted:
            streams.append(Stream(NET_SEQUENCE, NET_STREAM, (INBOUND.tp_id, OUTBOUND.tp_id)))
            specs += [INBOUND, OUTBOUND]
        else:
            self._offers.pop("net", None)
        if "utxo" in self._offers and "utxo" in wanted:
            for spec in callbacks.UTXO_SPECS:
                add(spec)
        for spec in BY_NAME.values():
            offer = _callback_offer(spec)
            if offer is not None and offer in wanted and offer in self._offers:
                add(spec)
        if self.config.poll_interval_s > 0:
            for spec in planned_snapshots(set(self._offers)):
                add(spec)
        self.streams = tuple(streams)
        self.record_types = tuple(specs)

    def _net_message_schema(self) -> Any:
        return self._schemas.require("tracing_net").NetMessage.schema

    async def _subscribe(self, conn: Connection, emitter: Emitter) -> list[Any]:
        """Subscribe to every planned callback stream; return the Handlers (dropping one
        would unsubscribe: the node's Handler destructor disconnects)."""
        ctx, handlers = conn.context, []
        names = {stream.name for stream in self.streams}
        if NET_STREAM in names:
            options = self._schemas.require("tracing_net").NetMessageTraceOptions.new_message(
                inbound=True,
                outbound=True,
                maxPayloadBytes=self.config.max_payload_bytes,
                maxQueueEvents=self.config.max_queue_events,
                maxBatchEvents=self.config.max_batch_events,
                maxBatchWaitUs=self.config.max_batch_wait_us,
            )
            server = callbacks.net_server(self._schemas, emitter)
            handlers.append(
                (await self._offers["net"].traceNetMessages(ctx, options, server)).result
            )
        if "utxocache:add" in names:
            server = callbacks.utxo_server(self._schemas, emitter)
            handlers.append((await self._offers["utxo"].traceUtxoCache(ctx, server)).result)
        if any(_callback_offer(BY_NAME[name]) == "chain" for name in names if name in BY_NAME):
            server = callbacks.chain_server(self._schemas, emitter)
            handlers.append((await self._offers["chain"].handleNotifications(ctx, server)).result)
        if "node" in self._offers and "node" in self.config.subscribe:
            for handle, server in callbacks.notification_servers(self._schemas, emitter).items():
                handlers.append((await getattr(self._offers["node"], handle)(ctx, server)).result)
        self._servers = handlers  # keep the servers' handlers alive with the session
        return handlers

    def _background(self, conn: Connection, emitter: Emitter) -> list[asyncio.Task[None]]:
        stopping = self._stop.is_set
        tasks = [asyncio.ensure_future(self._liveness(conn))]
        if "mining:tip_changed" in {s.name for s in self.streams}:
            tasks.append(asyncio.ensure_future(self._follow_tip(conn, emitter)))
        if self.config.poll_interval_s > 0:
            poller = Poller(conn, self._offers.get("node"), self._offers.get("chain"), emitter)
            if poller.collectors:
                tasks.append(
                    asyncio.ensure_future(poller.run(self.config.poll_interval_s, stopping))
                )
        return tasks

    async def _follow_tip(self, conn: Connection, emitter: Emitter) -> None:
        """Follow the tip until the node says it is shutting down. The session then stays
        connected: the node closes the connection once its shutdown is done (and its
        listener with it), so the reconnect that follows cannot reach the dying node,
        and any last events of other streams still arrive."""
        mining, stopping = self._offers["tip"], self._stop.is_set
        if await follow_tip(mining, conn.context, emitter, stopping):
            self.node_shutting_down = True
            log.info(
                "The node at %s is shutting down (Mining.waitTipChanged returned no tip); "
                "the session ends when the node closes the connection.",
                self.path,
            )

    async def _liveness(self, conn: Connection) -> None:
        """A cheap round trip every second: a node that is gone ends the session."""
        echo = (await conn.init.makeEcho(conn.context)).result
        while not self._stop.is_set():
            await asyncio.wait_for(echo.echo(conn.context, "tracebridge"), LIVENESS_TIMEOUT_S)
            await asyncio.sleep(LIVENESS_INTERVAL_S)

    async def _unsubscribe(self, conn: Connection, handlers: list[Any]) -> None:
        """Tell the node we are leaving, briefly: it may be gone already."""
        for handler in handlers:
            with contextlib.suppress(Exception):  # the node may be gone already
                await asyncio.wait_for(handler.destroy(conn.context), UNSUBSCRIBE_TIMEOUT_S)
