"""The emulated node process: socket, connections, subscriptions, streams, report.

Everything runs on one asyncio loop inside pycapnp's KJ loop (pycapnp requires it).
The streams play the node's threads: a synchronous stream (utxo, chain,
node_notifications) calls each subscriber in turn and awaits every reply before the
next event, as Bitcoin Core's validation/scheduler threads block in libmultiprocess's
``clientInvoke``; the net stream fills per-subscriber queues that one sender per
subscriber drains in batches (:mod:`bridge.emulator.ipc_net`).

Context-taking callbacks run on a thread the node makes on the client, through the
ThreadMap the client passed to ``Init.construct`` (one thread per subscription, made
on its first call), as libmultiprocess does; a client that passed none cannot receive
them (the call fails and the subscription ends as ``failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bridge.emulator.ipc_bitcoin import ChainSim
from bridge.emulator.ipc_capnp import (
    NodeError,
    error_text,
    fill_builder,
    install_error_format,
    serve,
)
from bridge.emulator.ipc_conn import (
    CALLER_THREAD,
    DESTROY_AFTER,
    GARBAGE,
    Connection,
    Recorder,
    StreamState,
    Subscription,
)
from bridge.emulator.ipc_net import NetOptions, NetQueue
from bridge.emulator.ipc_scenario import IpcScenario, StreamName
from bridge.emulator.ipc_servers import InitImpl
from bridge.emulator.ipc_sims import ChainScript, NodeSim
from bridge.emulator.ipc_streams import Streams
from bridge.emulator.ipc_values import CallEvent, UtxoGen
from bridge.sources.ipc.schemas import SchemaSet

__all__ = ["Runtime", "run"]

# How long shutdown waits for callback destroy() calls and in-flight calls.
SHUTDOWN_GRACE_S = 2.0
# How long shutdown lets answered calls reach the wire before closing connections.
ANSWER_FLUSH_S = 0.05
# How often --exit-with-parent checks that the parent is still there.
PARENT_POLL_S = 0.2


class Runtime:
    """The whole emulated node; see the module docstring."""

    def __init__(
        self,
        scenario: IpcScenario,
        schemas: SchemaSet,
        socket_path: Path,
        record: Path | None,
        parent_pid: int | None = None,
    ) -> None:
        self.sc = scenario
        self.parent_pid = parent_pid  # stop once this process is gone (None: never)
        self.schemas = schemas
        self.socket_path = socket_path
        self.recorder = Recorder(record) if record else None
        self.chain = ChainSim(seed=scenario.seed)
        self.node = NodeSim(seed=scenario.seed)
        self.connections: dict[int, Connection] = {}
        self.subs: dict[int, Subscription] = {}
        self.streams: dict[StreamName, StreamState] = {s: StreamState() for s in scenario.streams}
        self.stop_event = asyncio.Event()
        self.go_event = asyncio.Event()
        self.tip_changed = asyncio.Event()
        self.mining_interrupted = False
        self.tip_waits = 0  # waitTipChanged calls in progress
        self.interrupted = False
        self.sent_total = 0
        self.garbage_connections = 0
        self._garbage_done = False
        self._threads = 0
        self._conn_ids = 0
        self._sub_ids = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self.chain.on_tip_change.append(self._on_tip)
        self._chain_script = ChainScript(self.chain, scenario.values, scenario.seed)
        self.runner = Streams(self)

    # ---- bookkeeping ----------------------------------------------------------------

    def next_thread(self) -> int:
        self._threads += 1
        return self._threads

    def _on_tip(self) -> None:
        self.tip_changed.set()
        self.tip_changed = asyncio.Event()

    def interrupt_mining(self) -> None:
        self.mining_interrupted = True
        self._on_tip()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def record(self, line: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.write(line)

    def count_sent(self, n: int) -> None:
        self.sent_total += n
        limit = self.sc.garbage_after
        if limit is not None and not self._garbage_done and self.sent_total >= limit:
            self._garbage_done = True
            asyncio.get_running_loop().call_soon(self._write_garbage)

    def _write_garbage(self) -> None:
        for conn in list(self.connections.values()):
            if conn.write_garbage():
                self.garbage_connections += 1
                self.record({"kind": "garbage", "connection": conn.id, "bytes": GARBAGE.hex()})

    # ---- subscriptions ------------------------------------------------------------------

    def subscribe(
        self,
        conn: Connection,
        stream: StreamName,
        method: str,
        callback: Any,
        opts: NetOptions | None = None,
    ) -> Subscription:
        self._sub_ids += 1
        sub = Subscription(self._sub_ids, stream, method, conn, callback, opts=opts)
        sub.idle.set()
        sub.node_thread = self.schemas.proxy.Thread._new_client(
            conn.new_node_thread(CALLER_THREAD[stream])
        )
        self.subs[sub.id] = sub
        self.record(
            {
                "kind": "subscribe",
                "sub": sub.id,
                "stream": stream,
                "method": method,
                "connection": conn.id,
                "options": opts.as_dict() if opts else None,
            }
        )
        if opts is not None:
            sub.queue = NetQueue(opts, self.sc.ping_size)
            self.spawn(self.runner.net_sender(sub))
        return sub

    def active(self, stream: StreamName, method: str | None = None) -> list[Subscription]:
        return [
            s
            for s in self.subs.values()
            if s.ended is None and s.stream == stream and (method is None or s.method == method)
        ]

    def unsubscribe(self, sub_id: int, reason: str) -> None:
        sub = self.subs.get(sub_id)
        if sub is None or sub.ended is not None:
            return
        sub.ended = reason
        if sub.queue is not None:
            if sub.idle.is_set():
                sub.discarded += sub.queue.clear()
            sub.queue.nonempty.set()  # wake the sender so it sees the end
        self.record({"kind": "unsubscribe", "sub": sub.id, "reason": reason})
        if reason in DESTROY_AFTER and not sub.conn.closed:
            self.spawn(self._destroy_callback(sub))

    def handler_released(self, sub_id: int) -> None:
        """weakref finalizer of a Handler: may run inside pycapnp, so defer the work."""
        with contextlib.suppress(RuntimeError):  # loop already closed at exit
            asyncio.get_running_loop().call_soon(self._released, sub_id)

    def _released(self, sub_id: int) -> None:
        sub = self.subs.get(sub_id)
        if sub is not None:
            # A lost connection releases every capability first: report it as such.
            self.unsubscribe(sub_id, "connection_closed" if sub.conn.lost() else "released")

    def failure_reason(self, sub: Subscription) -> str:
        """Why a callback call failed: the connection went away, or the client failed."""
        return "connection_closed" if sub.conn.lost() else "failed"

    async def _destroy_callback(self, sub: Subscription) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sub.idle.wait(), SHUTDOWN_GRACE_S)
            req = sub.callback.destroy_request()
            req.context.thread = await self.client_thread(sub)
            req.context.callbackThread = sub.node_thread
            await asyncio.wait_for(req.send(), SHUTDOWN_GRACE_S)
            sub.callback_destroyed = True

    async def client_thread(self, sub: Subscription) -> Any:
        if sub.client_thread is None:
            tm = sub.conn.client_thread_map
            if tm is None:
                raise NodeError("the client passed no ThreadMap to Init.construct")
            sub.client_thread = (await tm.makeThread(CALLER_THREAD[sub.stream])).result
        return sub.client_thread

    # ---- delivery (synchronous streams) -------------------------------------------------

    async def deliver(self, sub: Subscription, ev: CallEvent, seq: int | None) -> None:
        """One callback call, awaited; counts and records it."""
        sub.offered += 1
        if sub.ended is not None:
            sub.discarded += 1
            return
        sub.idle.clear()
        try:
            if sub.stream == "utxo":
                req = getattr(sub.callback, f"{ev.method}_request")()
            else:
                target = "call" if sub.stream == "node_notifications" else ev.method
                req = getattr(sub.callback, f"{target}_request")()
                req.context.thread = await self.client_thread(sub)
                req.context.callbackThread = sub.node_thread
            fill_builder(req, ev.params)
            await req.send()
        except asyncio.CancelledError:
            # Shutdown cancelled the call mid-flight: whether the client got it is
            # unknowable here, so it is counted as neither sent nor failed.
            sub.interrupted += 1
            if self.recorder is not None:
                line = {"kind": "interrupted", "stream": sub.stream, "sub": sub.id, "seq": seq}
                self.recorder.write({**line, **ev.record()})
            sub.idle.set()
            raise
        except Exception as exc:
            sub.failed += 1
            sub.error = error_text(exc)
            self.record({"kind": "failed", "sub": sub.id, "error": sub.error, "events": 1})
            sub.idle.set()
            self.unsubscribe(sub.id, self.failure_reason(sub))
            return
        sub.idle.set()
        sub.sent += 1
        sub.calls += 1
        if self.recorder is not None:
            line = {"kind": "event", "stream": sub.stream, "sub": sub.id, "seq": seq}
            self.recorder.write({**line, **ev.record()})
        self.count_sent(1)

    async def replay_mempool(self, conn: Connection, notifications: Any) -> None:
        """Chain.requestMempoolTransactions: one transactionAddedToMempool per mempool tx."""
        tm = conn.client_thread_map
        if tm is None:
            raise NodeError("the client passed no ThreadMap to Init.construct")
        thread = (await tm.makeThread(CALLER_THREAD["chain"])).result
        for tx in list(self.chain.mempool):
            req = notifications.transactionAddedToMempool_request()
            req.context.thread = thread
            req.tx = tx.raw
            await req.send()

    # ---- streams ------------------------------------------------------------------------

    def limits(self, stream: StreamName) -> tuple[int, float, float]:
        return self.sc.count_for(stream), self.sc.rate_for(stream), self.sc.duration

    async def sleep(self, delay: float) -> None:
        """Sleep, but wake at once when the node is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), delay)

    async def _block_timer(self) -> None:
        interval = self.sc.block_interval
        while True:
            await self.sleep(interval)
            if self.stop_event.is_set():
                return
            self.chain.connect_block(self.chain.mempool[:2])

    # ---- state for the polling methods -----------------------------------------------

    def set_network_active(self, active: bool) -> None:
        if self.node.network_active == active:
            return
        self.node.network_active = active
        ev = CallEvent("handleNotifyNetworkActiveChanged", {"networkActive": active})

        async def notify() -> None:
            for sub in self.active("node_notifications", ev.method):
                await self.deliver(sub, ev, None)

        self.spawn(notify())

    # ---- lifecycle ------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        import capnp

        install_error_format(capnp.lib.capnp)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()

        def factory() -> Any:
            self._conn_ids += 1
            conn_id = self._conn_ids
            holder: dict[str, Any] = {}

            async def on_connect(stream: Any) -> None:
                conn = Connection(self, conn_id, holder["protocol"])
                self.connections[conn_id] = conn
                bootstrap = serve(self.schemas.init.Init, InitImpl(self, conn))
                server = capnp.TwoPartyServer(stream, bootstrap=bootstrap)
                try:
                    await server.on_disconnect()
                finally:
                    conn.closed = True
                    for sub in list(self.subs.values()):
                        if sub.conn is conn:
                            self.unsubscribe(sub.id, "connection_closed")

            protocol = capnp.AsyncIoStream._connect(on_connect)
            holder["protocol"] = protocol
            return protocol

        server = await loop.create_unix_server(factory, str(self.socket_path))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_stop)
        loop.add_signal_handler(signal.SIGUSR1, self.go_event.set)
        watcher = None
        if self.parent_pid is not None:
            watcher = asyncio.ensure_future(self._watch_parent(self.parent_pid))
        sys.stdout.write(f"READY pid={os.getpid()}\n")
        sys.stdout.flush()
        try:
            await self._main()
        finally:
            if watcher is not None:
                watcher.cancel()
            await self._shutdown(server)

    async def _watch_parent(self, parent_pid: int) -> None:
        """Stop as on SIGTERM once re-parented: a crashed harness must not leave a node
        serving (and, in loop scenarios, generating) forever."""
        while os.getppid() == parent_pid:
            await asyncio.sleep(PARENT_POLL_S)
        self._on_stop()

    def _on_stop(self) -> None:
        self.interrupted = True
        self._stopping()

    def _stopping(self) -> None:
        """The node is shutting down: waiting waitTipChanged calls answer no tip."""
        self.stop_event.set()
        self._on_tip()

    async def _main(self) -> None:
        if self.sc.wait_start:
            await _first(self.go_event, self.stop_event)
            if self.stop_event.is_set():
                return
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        streams = set(self.sc.streams)
        if self.sc.block_interval > 0 and not streams & {"chain", "node_notifications"}:
            self.spawn(self._block_timer())
        runners = []
        utxo = UtxoGen(self.sc.values, self.sc.seed)
        if "utxo" in streams:
            runners.append(self.runner.sync_stream("utxo", utxo.next, utxo.malformed))
        if "net" in streams:
            runners.append(self.runner.ping_stream() if self.sc.ping else self.runner.net_stream())
        if "chain" in streams:
            script = self._chain_script
            runners.append(
                self.runner.sync_stream("chain", script.next, script.malformed, script.realize)
            )
        if "node_notifications" in streams:
            drive = "chain" not in streams
            runners.append(
                self.runner.sync_stream(
                    "node_notifications",
                    lambda: self.node.next(self.chain, drive),
                    lambda: self.node.malformed(self.chain),
                )
            )
        tasks = [self.spawn(r) for r in runners]
        if tasks and not self.sc.linger:
            done = asyncio.ensure_future(asyncio.gather(*tasks))
            await _first(done, self.stop_event)
            if not done.done():
                done.cancel()
        else:
            await self.stop_event.wait()

    async def _shutdown(self, server: Any) -> None:
        self._stopping()
        if self.tip_waits:
            # Let the woken waitTipChanged calls answer (no tip) before the connections
            # close: pycapnp must not complete a call on a connection already closed.
            deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE_S
            while self.tip_waits and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(ANSWER_FLUSH_S)
        for sub in list(self.subs.values()):
            if sub.ended is None:
                self.unsubscribe(sub.id, "shutdown")
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        server.close()
        for conn in self.connections.values():
            conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
        if self.recorder is not None:
            self.recorder.close()

    def report(self) -> dict[str, Any]:
        streams: dict[str, Any] = {}
        for name, st in self.streams.items():
            subs = [s for s in self.subs.values() if s.stream == name]
            elapsed = ((st.ended or time.monotonic()) - st.started) if st.started else 0.0
            sent = sum(s.sent for s in subs)
            streams[name] = {
                "generated": st.generated,
                "offered": sum(s.offered for s in subs),
                "sent": sent,
                "dropped": sum(s.dropped for s in subs),
                "dropped_reported": sum(s.dropped_reported for s in subs),
                "discarded": sum(s.discarded for s in subs),
                "failed": sum(s.failed for s in subs),
                "interrupted": sum(s.interrupted for s in subs),
                "malformed": st.malformed,
                "batches": sum(s.batches for s in subs),
                "calls": sum(s.calls for s in subs),
                "subscriptions": len(subs),
                "unsubscribes": sum(1 for s in subs if s.ended not in (None, "shutdown")),
                "elapsed_s": elapsed,
                "events_per_s": sent / elapsed if elapsed > 0 and sent else None,
            }
        return {
            "pid": os.getpid(),
            "version": self.sc.version,
            "socket": str(self.socket_path),
            "values": self.sc.values,
            "seed": self.sc.seed,
            "ping": self.sc.ping,
            "interrupted": self.interrupted,
            "elapsed_s": time.monotonic() - self._t0,
            "cpu_s": time.process_time() - self._cpu0,
            "connections": self._conn_ids,
            "streams": streams,
            "subscriptions": [s.stats() for s in self.subs.values()],
            "stages": self.runner.stages,
            "garbage_connections": self.garbage_connections,
            "tip_height": self.chain.height,
        }


async def _first(a: Any, b: asyncio.Event) -> None:
    """Wait for ``a`` (Event or future) or the event ``b``, whichever comes first."""
    fa = asyncio.ensure_future(a.wait()) if isinstance(a, asyncio.Event) else a
    fb = asyncio.ensure_future(b.wait())
    await asyncio.wait({fa, fb}, return_when=asyncio.FIRST_COMPLETED)
    fb.cancel()
    if isinstance(a, asyncio.Event):
        fa.cancel()


def run(
    scenario: IpcScenario,
    schemas: SchemaSet,
    socket_path: Path,
    record: Path | None,
    report: Path | None,
    parent_pid: int | None = None,
) -> int:
    """Serve until the scenario ends, a signal stops it or ``parent_pid`` (if given) is
    gone; write the report; exit code."""
    import capnp

    rt_holder: list[Runtime] = []

    async def main() -> None:
        rt = Runtime(scenario, schemas, socket_path, record, parent_pid)
        rt_holder.append(rt)
        await rt.serve()

    try:
        asyncio.run(capnp.run(main()))
    finally:
        if report is not None and rt_holder:
            tmp = report.with_name(report.name + ".tmp")
            tmp.write_text(json.dumps(rt_holder[0].report(), indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, report)
    return 0
