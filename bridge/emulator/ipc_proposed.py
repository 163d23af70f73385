"""The emulated node's proposed interfaces: Handler, both Tracing, Chain, Node.

Destroying or disconnecting a Handler unsubscribes; so does releasing the last
reference to it (a weakref finalizer on the Handler server), because in the node the
C++ handler's destructor disconnects. Polling methods answer from the shared
simulation (:mod:`bridge.emulator.ipc_polls`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from bridge.emulator import ipc_polls as polls
from bridge.emulator.ipc_capnp import NodeError, feerate, serve
from bridge.emulator.ipc_net import NetOptions
from bridge.emulator.ipc_sims import banned_entry

if TYPE_CHECKING:
    from bridge.emulator.ipc_conn import Connection
    from bridge.emulator.ipc_runtime import Runtime

__all__ = [
    "ChainImpl",
    "HandlerImpl",
    "NetTracingImpl",
    "NodeImpl",
    "UtxoTracingImpl",
    "make_handler",
]


class HandlerImpl:
    def __init__(self, rt: Runtime, conn: Connection, sub_id: int) -> None:
        self.rt = rt
        self.conn = conn
        self.sub_id = sub_id

    async def destroy(self, context: Any, **_: Any) -> None:
        await self.conn.check_context(context)
        self.rt.unsubscribe(self.sub_id, "destroy")

    async def disconnect(self, context: Any, **_: Any) -> None:
        await self.conn.check_context(context)
        self.rt.unsubscribe(self.sub_id, "disconnect")


def make_handler(rt: Runtime, conn: Connection, sub_id: int) -> Any:
    """A Handler whose release (last client reference dropped) unsubscribes too."""
    handler = serve(rt.schemas.require("handler").Handler, HandlerImpl(rt, conn, sub_id))
    finalizer = weakref.finalize(handler, rt.handler_released, sub_id)
    finalizer.atexit = False
    return handler


class UtxoTracingImpl:
    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    async def traceUtxoCache(self, context: Any, callback: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        sub = self.rt.subscribe(self.conn, "utxo", "traceUtxoCache", callback)
        return make_handler(self.rt, self.conn, sub.id)


class NetTracingImpl:
    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    async def destroy(self, context: Any, **_: Any) -> None:
        await self.conn.check_context(context)

    async def traceNetMessages(self, context: Any, options: Any, callback: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        sub = self.rt.subscribe(
            self.conn, "net", "traceNetMessages", callback, NetOptions.clamped(options)
        )
        return make_handler(self.rt, self.conn, sub.id)


class ChainImpl:
    """Chain: notifications plus the polling methods a monitor uses."""

    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    async def destroy(self, context: Any, **_: Any) -> None:
        await self.conn.check_context(context)

    async def handleNotifications(self, context: Any, notifications: Any, **_: Any) -> Any:
        await self.conn.check_context(context)
        sub = self.rt.subscribe(self.conn, "chain", "handleNotifications", notifications)
        return make_handler(self.rt, self.conn, sub.id)

    async def requestMempoolTransactions(self, context: Any, notifications: Any, **_: Any) -> None:
        """Send transactionAddedToMempool for every mempool transaction, then return."""
        await self.conn.check_context(context)
        await self.rt.replay_mempool(self.conn, notifications)

    async def waitForNotifications(self, context: Any, **_: Any) -> None:
        # Notifications are delivered synchronously: nothing is ever queued.
        await self.conn.check_context(context)

    async def waitForNotificationsIfTipChanged(self, context: Any, oldTip: bytes, **_: Any) -> None:
        await self.conn.check_context(context)

    async def getHeight(self, context: Any, **_: Any) -> tuple[int, bool]:
        await self.conn.check_context(context)
        return self.rt.chain.height, True

    async def getBlockHash(self, context: Any, height: int, **_: Any) -> bytes:
        await self.conn.check_context(context)
        h = self.rt.chain.block_hash(height)
        if h is None:
            raise NodeError(f"no block at height {height}")
        return h

    async def haveBlockOnDisk(self, context: Any, height: int, **_: Any) -> bool:
        await self.conn.check_context(context)
        return 0 <= height <= self.rt.chain.height

    async def isInMempool(self, context: Any, txid: bytes, **_: Any) -> bool:
        await self.conn.check_context(context)
        return any(t.txid == bytes(txid) for t in self.rt.chain.mempool)

    async def estimateSmartFee(
        self, context: Any, numBlocks: int, conservative: bool, wantCalc: bool, **_: Any
    ) -> tuple[dict[str, Any], bytes]:
        await self.conn.check_context(context)
        target = min(max(numBlocks, 1), 1008)
        rate = polls.fee_estimate(self.rt, target, conservative)
        calc = {
            "desiredTarget": numBlocks,
            "returnedTarget": target,
            "bestHeight": self.rt.chain.height,
        }
        return calc, feerate(rate)

    async def estimateMaxBlocks(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return 1008

    async def mempoolMinFee(self, context: Any, **_: Any) -> bytes:
        await self.conn.check_context(context)
        return feerate(polls.mempool_min_fee(self.rt))

    async def relayMinFee(self, context: Any, **_: Any) -> bytes:
        await self.conn.check_context(context)
        return feerate(100)  # -minrelaytxfee default since v29: 0.1 sat/vB

    async def relayIncrementalFee(self, context: Any, **_: Any) -> bytes:
        await self.conn.check_context(context)
        return feerate(100)

    async def relayDustFee(self, context: Any, **_: Any) -> bytes:
        await self.conn.check_context(context)
        return feerate(3000)

    async def havePruned(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return False

    async def getPruneHeight(self, context: Any, **_: Any) -> tuple[int, bool]:
        await self.conn.check_context(context)
        return 0, False

    async def isReadyToBroadcast(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return True

    async def isInitialBlockDownload(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return False

    async def shutdownRequested(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return False


_NODE_HANDLERS = (
    "handleInitMessage",
    "handleMessageBox",
    "handleQuestion",
    "handleShowProgress",
    "handleNotifyNumConnectionsChanged",
    "handleNotifyNetworkActiveChanged",
    "handleNotifyAlertChanged",
    "handleBannedListChanged",
    "handleNotifyBlockTip",
    "handleNotifyHeaderTip",
)


class NodeImpl:
    """Node: the handle* notifications and polling methods (PR #10102 at 101faa0a)."""

    def __init__(self, rt: Runtime, conn: Connection) -> None:
        self.rt = rt
        self.conn = conn

    def __getattr__(self, name: str) -> Any:
        if name not in _NODE_HANDLERS:
            raise AttributeError(name)

        async def handle(context: Any, callback: Any, **_: Any) -> Any:
            await self.conn.check_context(context)
            sub = self.rt.subscribe(self.conn, "node_notifications", name, callback)
            return make_handler(self.rt, self.conn, sub.id)

        return handle

    async def destroy(self, context: Any, **_: Any) -> None:
        await self.conn.check_context(context)

    async def getNodeCount(self, context: Any, flags: int, **_: Any) -> int:
        await self.conn.check_context(context)
        n_in, n_out = self.rt.node.counts()
        return (n_in if flags & 1 else 0) + (n_out if flags & 2 else 0)

    async def getNodesStats(self, context: Any, **_: Any) -> tuple[list[dict[str, Any]], bool]:
        await self.conn.check_context(context)
        return polls.nodes_stats(self.rt), True

    async def getBanned(self, context: Any, **_: Any) -> tuple[list[dict[str, bytes]], bool]:
        await self.conn.check_context(context)
        entries = [banned_entry(*b) for b in self.rt.node.banned]
        return [{"key": k, "value": v} for k, v in entries], True

    async def getTotalBytesRecv(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return polls.total_bytes(self.rt)[0]

    async def getTotalBytesSent(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return polls.total_bytes(self.rt)[1]

    async def getMempoolSize(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return len(self.rt.chain.mempool)

    async def getMempoolDynamicUsage(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return polls.mempool_usage(self.rt)

    async def getMempoolMaxUsage(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return 300_000_000  # -maxmempool default, 300 MB

    async def getHeaderTip(self, context: Any, **_: Any) -> tuple[int, int, bool]:
        await self.conn.check_context(context)
        return self.rt.chain.height, self.rt.chain.tip_time, True

    async def getNumBlocks(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return self.rt.chain.height

    async def getBestBlockHash(self, context: Any, **_: Any) -> bytes:
        await self.conn.check_context(context)
        return self.rt.chain.tip

    async def getLastBlockTime(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return self.rt.chain.tip_time

    async def getVerificationProgress(self, context: Any, **_: Any) -> float:
        await self.conn.check_context(context)
        return 1.0

    async def isInitialBlockDownload(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return False

    async def getNetworkActive(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return self.rt.node.network_active

    async def setNetworkActive(self, context: Any, active: bool, **_: Any) -> None:
        await self.conn.check_context(context)
        self.rt.set_network_active(active)

    async def getWarnings(self, context: Any, **_: Any) -> dict[str, str]:
        await self.conn.check_context(context)
        return {"original": "", "translated": ""}

    async def getLogCategories(self, context: Any, **_: Any) -> int:
        await self.conn.check_context(context)
        return 0

    async def shutdownRequested(self, context: Any, **_: Any) -> bool:
        await self.conn.check_context(context)
        return False

    async def getDustRelayFee(self, context: Any, **_: Any) -> bytes:
        await self.conn.check_context(context)
        return feerate(3000)
