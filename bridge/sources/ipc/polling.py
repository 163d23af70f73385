"""Node state that IPC only offers by asking: polled into snapshot records.

Every ``ipc.poll_interval_s`` the bridge asks Node and Chain for peers, mempool, chain
and network state and fee estimates, and writes one snapshot record of each to
``<prefix>.node``. A method the node does not implement disables its snapshot with one
warning; anything else that fails is a counted dead letter, and polling goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.events.catalog import BY_NAME
from bridge.events.spec import EventSpec
from bridge.sources.ipc.connection import Connection, is_unimplemented
from bridge.sources.ipc.emitter import Emitter

log = logging.getLogger(__name__)

# Confirmation targets asked of estimateSmartFee: next blocks, an hour, two hours, a day.
FEE_TARGETS = (2, 6, 12, 144)
# ConnectionDirection flags of Node.getNodeCount (src/net.h).
INBOUND, OUTBOUND = 1, 2

Collector = Callable[[], Awaitable[dict[str, Any]]]

# Each snapshot and the interfaces (Init factories) it needs.
SNAPSHOTS: dict[str, tuple[str, ...]] = {
    "node:peers": ("node",),
    "node:network_stats": ("node",),
    "node:mempool_stats": ("node", "chain"),
    "node:chain_stats": ("node", "chain"),
    "chain:fee_estimates": ("chain",),
}


def planned_snapshots(offered: set[str]) -> list[EventSpec]:
    """The snapshots the node's offered interfaces allow."""
    return [BY_NAME[name] for name, needs in SNAPSHOTS.items() if set(needs) <= offered]


def fee_rate(serialized: bytes) -> int:
    """A serialized CFeeRate: its one int64 field, satoshis per 1000 vbytes."""
    data = bytes(serialized)
    return int.from_bytes(data[:8], "little", signed=True) if len(data) >= 8 else 0


def peer(stats: Any) -> dict[str, Any]:
    """One CNodeStats as the catalogue's PeerStats values."""
    return {name: _read(stats, capnp_name) for name, capnp_name in PEER_FIELDS}


# PeerStats field -> NodeStats field (schemas/proposed/node.capnp); a test checks every
# PeerStats field of the catalogue is here and every NodeStats field named exists.
PEER_FIELDS: tuple[tuple[str, str], ...] = (
    ("peer_id", "nodeid"),
    ("addr", "addrName"),
    ("inbound", "inbound"),
    ("conn_type", "connType"),
    ("network", "network"),
    ("version", "version"),
    ("subver", "cleanSubVer"),
    ("services", "services"),
    ("starting_height", "startingHeight"),
    ("bytes_sent", "sendBytes"),
    ("bytes_recv", "recvBytes"),
    ("ping_time_us", "pingTime"),
    ("min_ping_time_us", "minPingTime"),
    ("time_connected", "timeConnected"),
    ("last_send", "lastSend"),
    ("last_recv", "lastRecv"),
    ("bip152_hb_to", "bip152HighbandwidthTo"),
    ("bip152_hb_from", "bip152HighbandwidthFrom"),
    ("relay_txes", "relayTxes"),
)


def _read(struct: Any, name: str) -> Any:
    value = getattr(struct, name)
    return bytes(value) if isinstance(value, bytes | memoryview) else value


class Poller:
    """Polls while the connection lives; ``node``/``chain`` may be None (not offered)."""

    def __init__(self, conn: Connection, node: Any, chain: Any, emitter: Emitter) -> None:
        self._ctx = conn.context
        self._node = node
        self._chain = chain
        self._emitter = emitter
        self._disabled: set[str] = set()
        offered = {name for name, cap in (("node", node), ("chain", chain)) if cap is not None}
        every: dict[str, Collector] = {
            "node:peers": self._peers,
            "node:network_stats": self._network,
            "node:mempool_stats": self._mempool,
            "node:chain_stats": self._chain_stats,
            "chain:fee_estimates": self._fees,
        }
        self.collectors = {spec.name: every[spec.name] for spec in planned_snapshots(offered)}

    async def run(self, interval_s: float, stopping: Callable[[], bool]) -> None:
        while not stopping():
            await self.poll_once()
            waited = 0.0
            while waited < interval_s and not stopping():
                await asyncio.sleep(0.05)
                waited += 0.05

    async def poll_once(self) -> None:
        for name, collect in self.collectors.items():
            if name in self._disabled:
                continue
            spec = BY_NAME[name]
            try:
                values = await collect()
            except Exception as error:
                if is_unimplemented(error):
                    self._disabled.add(name)
                    log.warning("The node does not offer %s; not polling it.", name)
                    continue
                if "disconnect" in str(error).lower():
                    raise
                self._emitter.reject(spec, f"poll failed: {error}")
                continue
            self._emitter.body(spec, values)
        await self._emitter.wait_for_room()

    async def _peers(self) -> dict[str, Any]:
        stats = (await self._node.getNodesStats(self._ctx)).stats
        return {"peers": [peer(s) for s in stats]}

    async def _mempool(self) -> dict[str, Any]:
        ctx, node, chain = self._ctx, self._node, self._chain
        return {
            "size": (await node.getMempoolSize(ctx)).result,
            "dynamic_usage": (await node.getMempoolDynamicUsage(ctx)).result,
            "max_usage": (await node.getMempoolMaxUsage(ctx)).result,
            "min_fee": fee_rate((await chain.mempoolMinFee(ctx)).result),
            "relay_min_fee": fee_rate((await chain.relayMinFee(ctx)).result),
        }

    async def _chain_stats(self) -> dict[str, Any]:
        ctx, node, chain = self._ctx, self._node, self._chain
        header = await node.getHeaderTip(ctx)
        prune = await chain.getPruneHeight(ctx)
        return {
            "header_height": header.height if header.result else -1,
            "header_time": header.blockTime if header.result else 0,
            "blocks": (await node.getNumBlocks(ctx)).result,
            "best_block_hash": bytes((await node.getBestBlockHash(ctx)).result),
            "verification_progress": (await node.getVerificationProgress(ctx)).result,
            "initial_block_download": (await node.isInitialBlockDownload(ctx)).result,
            "have_pruned": (await chain.havePruned(ctx)).result,
            "prune_height": prune.result if prune.hasResult else -1,
        }

    async def _network(self) -> dict[str, Any]:
        ctx, node = self._ctx, self._node
        banned = (await node.getBanned(ctx)).banmap
        return {
            "network_active": (await node.getNetworkActive(ctx)).result,
            "connections_in": (await node.getNodeCount(ctx, INBOUND)).result,
            "connections_out": (await node.getNodeCount(ctx, OUTBOUND)).result,
            "bytes_recv": (await node.getTotalBytesRecv(ctx)).result,
            "bytes_sent": (await node.getTotalBytesSent(ctx)).result,
            "banned": [{"subnet": bytes(b.key), "entry": bytes(b.value)} for b in banned],
        }

    async def _fees(self) -> dict[str, Any]:
        estimates = []
        for target in FEE_TARGETS:
            answer = await self._chain.estimateSmartFee(self._ctx, target, False, False)
            estimates.append({"target": target, "fee_rate": fee_rate(answer.result)})
        return {"estimates": estimates}
