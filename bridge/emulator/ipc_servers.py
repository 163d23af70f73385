"""The emulated node's merged interfaces: Init, ThreadMap/Thread, Echo, Mining, Rpc.

Behaviour copied from Bitcoin Core / libmultiprocess on purpose:

- A method with a ``context`` parameter rejects a ``context.thread`` that this
  connection's ThreadMap did not make ("invalid thread handle").
- Errors read like a C++ exception passed through kj (``std::exception: <what>``).
- ``makeMiningOld2`` (v31+) always fails with Core's message.
- Shutting down: ``waitTipChanged`` answers no tip (an empty BlockRef) and
  ``makeMining`` a null capability, as a real bitcoin-node does (master d84fc352).

The factories of the proposed interfaces (``makeNetTracing`` ...) are here because
Init is; their servers live in :mod:`bridge.emulator.ipc_proposed`.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any

from bridge.emulator import ipc_polls as polls
from bridge.emulator.ipc_capnp import OLD_MINING_ERROR, NodeError, serve
from bridge.emulator.ipc_proposed import ChainImpl, NetTracingImpl, NodeImpl, UtxoTracingImpl

if TYPE_CHECKING:
    from bridge.emulator.ipc_conn import Connection
    from bridge.emulator.ipc_runtime import Runtime

__all__ = ["EchoImpl", "InitImpl", "MiningImpl", "RpcImpl", "ThreadImpl", "ThreadMapImpl"]

HASH_BYTES = 32
# What a real node answers to a currentTip shorter than a uint256 (its SpanReader).
SHORT_UINT256_ERROR = "SpanReader::read(): end of data: iostream error"


class ThreadImpl:
    def __init__(self, name: str) -> None:
        self.name = name

    async def getName(self, **_: Any) -> str:
        return self.name


class ThreadMapImpl:
    """The node's ThreadMap: names threads ``<name>-<pid>/<n>``, like libmultiprocess."""

    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    async def makeThread(self, name: str, **_: Any) -> Any:
        return self.conn.new_node_thread(name)


class InitImpl:
    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    async def construct(self, threadMap: Any, **_: Any) -> Any:
        self.conn.client_thread_map = threadMap
        return serve(self.rt.schemas.proxy.ThreadMap, ThreadMapImpl(self.rt, self.conn))

    async def makeEcho(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        return serve(self.rt.schemas.echo.Echo, EchoImpl(self.conn))

    async def makeMiningOld2(self, **_: Any) -> None:
        raise NodeError(OLD_MINING_ERROR)

    async def makeMining(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        if self.rt.stop_event.is_set():
            return None  # like a real node shutting down: a null Mining (C++ nullptr)
        return serve(self.rt.schemas.mining.Mining, MiningImpl(self.rt, self.conn))

    async def makeRpc(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        return serve(self.rt.schemas.require("rpc").Rpc, RpcImpl(self.rt, self.conn))

    async def makeNetTracing(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        return serve(
            self.rt.schemas.require("tracing_net").Tracing, NetTracingImpl(self.rt, self.conn)
        )

    async def makeUtxoTracing(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        return serve(
            self.rt.schemas.require("tracing_utxo").Tracing, UtxoTracingImpl(self.rt, self.conn)
        )

    async def makeChain(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        return serve(self.rt.schemas.require("chain").Chain, ChainImpl(self.rt, self.conn))

    async def makeNode(self, context: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        return serve(self.rt.schemas.require("node").Node, NodeImpl(self.rt, self.conn))


class EchoImpl:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def destroy(self, context: Any, **_: Any) -> None:
        await self.conn.check_context(context)

    async def echo(self, context: Any, echo: str, **_: Any) -> str:
        await self.conn.check_context(context)
        return echo


class MiningImpl:
    """Mining over the simulated chain (regtest: isTestChain true, never in IBD)."""

    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    def _tip(self) -> dict[str, Any]:
        chain = self.rt.chain
        return {"hash": chain.tip, "height": chain.height}

    async def isTestChain(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return True

    async def isInitialBlockDownload(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return False

    async def getTip(self, context: Any, **_: Any) -> tuple[dict[str, Any], bool]:
        await self.conn.check_context(context)
        return self._tip(), True

    async def waitTipChanged(
        self, context: Any, currentTip: bytes, timeout: float, **_: Any
    ) -> dict[str, Any]:
        """Return once the tip is not ``currentTip``, or after ``timeout`` milliseconds.

        As a real bitcoin-node (master d84fc352) does: once the node is shutting down
        the answer is no tip at all (C++ ``std::nullopt``: an empty BlockRef), at once
        and for every later call; a ``currentTip`` shorter than a uint256 fails."""
        await self.conn.check_context(context)
        current = bytes(currentTip)
        if len(current) < HASH_BYTES:
            raise NodeError(SHORT_UINT256_ERROR)
        self.rt.tip_waits += 1
        try:
            return await self._wait_tip_changed(current, timeout)
        finally:
            self.rt.tip_waits -= 1

    async def _wait_tip_changed(self, current: bytes, timeout: float) -> dict[str, Any]:
        deadline = (
            None
            if not math.isfinite(timeout) or timeout > 1e15
            else asyncio.get_running_loop().time() + max(timeout, 0) / 1000
        )
        while self.rt.chain.tip == current and not self.rt.mining_interrupted:
            if self.rt.stop_event.is_set():
                return {}
            changed = self.rt.tip_changed
            if deadline is None:
                await changed.wait()
                continue
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                break
        if self.rt.stop_event.is_set():
            return {}
        return self._tip()

    async def interrupt(self, **_: Any) -> None:
        self.rt.interrupt_mining()


class RpcImpl:
    """JSON-RPC over IPC (master's Rpc.executeRpc), for a handful of read-only calls."""

    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    async def executeRpc(self, context: Any, request: str, uri: str, user: str, **_: Any) -> str:
        await self.conn.check_context(context)
        try:
            parsed = json.loads(request)
        except ValueError:
            return json.dumps(
                {"result": None, "error": {"code": -32700, "message": "Parse error"}, "id": None}
            )
        if isinstance(parsed, list):
            return json.dumps([self._one(r) for r in parsed])
        return json.dumps(self._one(parsed))

    def _one(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return {
                "result": None,
                "error": {"code": -32600, "message": "Invalid Request object"},
                "id": None,
            }
        rid = req.get("id")
        params = req.get("params") or []
        v2 = req.get("jsonrpc") == "2.0"
        try:
            result = polls.rpc_call(self.rt, req["method"], params)
        except KeyError:
            err = {"code": -32601, "message": "Method not found"}
            return (
                {"jsonrpc": "2.0", "error": err, "id": rid}
                if v2
                else {"result": None, "error": err, "id": rid}
            )
        except (TypeError, ValueError, IndexError) as exc:
            err = {"code": -8, "message": str(exc)}
            return (
                {"jsonrpc": "2.0", "error": err, "id": rid}
                if v2
                else {"result": None, "error": err, "id": rid}
            )
        return (
            {"jsonrpc": "2.0", "result": result, "id": rid}
            if v2
            else {"result": result, "error": None, "id": rid}
        )
