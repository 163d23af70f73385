"""What the emulated node answers to polls: deterministic state that changes.

Node.getNodesStats, getTotalBytes*, getMempool*, Chain.estimateSmartFee and the
JSON-RPC calls all read the shared chain and peer simulation, so a client sees polls
agree with its notifications (the tip it was told about is the tip it polls).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.emulator.ipc_runtime import Runtime

__all__ = [
    "fee_estimate",
    "mempool_min_fee",
    "mempool_usage",
    "nodes_stats",
    "rpc_call",
    "total_bytes",
]


def total_bytes(rt: Runtime) -> tuple[int, int]:
    """(received, sent) bytes: grows with time and with the net stream."""
    up = time.monotonic() - rt._t0
    net = rt.streams["net"].generated if "net" in rt.streams else 0
    return 250_000 + int(up * 3_000) + 40 * net, 180_000 + int(up * 2_000) + 40 * net


def mempool_usage(rt: Runtime) -> int:
    return 4_096 + sum(3 * len(t.raw) + 256 for t in rt.chain.mempool)


def mempool_min_fee(rt: Runtime) -> int:
    return 1000 if len(rt.chain.mempool) > 50 else 100


def fee_estimate(rt: Runtime, target: int, conservative: bool) -> int:
    base = 1_000 + 40 * len(rt.chain.mempool) + 10 * (rt.chain.height % 7)
    return int(base * (1.2 if conservative else 1.0) * 6 / (target + 5))


def nodes_stats(rt: Runtime) -> list[dict[str, Any]]:
    recv, sent = total_bytes(rt)
    out = []
    for p in rt.node.peers:
        share = len(rt.node.peers)
        out.append(
            {
                "nodeid": p.id,
                "services": p.services,
                "relayTxes": True,
                "lastSend": rt.chain.tip_time,
                "lastRecv": rt.chain.tip_time,
                "timeConnected": p.connected,
                "addrName": p.addr,
                "version": p.version,
                "cleanSubVer": p.subver,
                "inbound": p.inbound,
                "bip152HighbandwidthTo": p.bip152_to,
                "bip152HighbandwidthFrom": p.bip152_from,
                "startingHeight": p.starting_height,
                "sendBytes": sent // share,
                "sendBytesPerMsgCmd": [
                    {"key": "ping", "value": 32 * (p.id + 1)},
                    {"key": "inv", "value": sent // share - 32 * (p.id + 1)},
                ],
                "recvBytes": recv // share,
                "recvBytesPerMsgCmd": [
                    {"key": "pong", "value": 32 * (p.id + 1)},
                    {"key": "tx", "value": recv // share - 32 * (p.id + 1)},
                ],
                "pingTime": p.ping_us,
                "minPingTime": p.ping_us // 2,
                "addrLocal": "" if p.inbound else "203.0.113.7:18444",
                "network": 1,
                "connType": p.conn_type,
            }
        )
    return out


def rpc_call(rt: Runtime, method: str, params: Any) -> Any:
    chain = rt.chain
    n_in, n_out = rt.node.counts()
    if method == "getblockcount":
        return chain.height
    if method == "getbestblockhash":
        return chain.tip[::-1].hex()
    if method == "getblockhash":
        h = chain.block_hash(int(params[0]))
        if h is None:
            raise ValueError("Block height out of range")
        return h[::-1].hex()
    if method == "getblockchaininfo":
        return {
            "chain": "regtest",
            "blocks": chain.height,
            "headers": chain.height,
            "bestblockhash": chain.tip[::-1].hex(),
            "time": chain.tip_time,
            "mediantime": chain.tip_time - 3000,
            "verificationprogress": 1,
            "initialblockdownload": False,
            "pruned": False,
        }
    if method == "getmempoolinfo":
        return {
            "loaded": True,
            "size": len(chain.mempool),
            "bytes": sum(t.vsize for t in chain.mempool),
            "usage": mempool_usage(rt),
            "maxmempool": 300_000_000,
        }
    if method == "getconnectioncount":
        return n_in + n_out
    if method == "getnetworkinfo":
        return {
            "version": 300000,
            "subversion": "/Satoshi:30.0.0/",
            "protocolversion": 70016,
            "networkactive": rt.node.network_active,
            "connections": n_in + n_out,
            "connections_in": n_in,
            "connections_out": n_out,
        }
    if method == "uptime":
        return int(time.monotonic() - rt._t0)
    if method == "echo":
        return list(params) if isinstance(params, list) else params
    raise KeyError(method)
