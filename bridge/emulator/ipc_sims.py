"""The emulated node's chain and peers: the scripts behind the chain and node streams.

:class:`ChainScript` drives the shared :class:`~bridge.emulator.ipc_bitcoin.ChainSim`
(transactions enter and leave the mempool, blocks connect, a reorg now and then) and
describes each step as the ChainNotifications call a node makes for it.
:class:`NodeSim` holds the peers, the network switch and the ban list, and describes
each change as the Node notification it causes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.emulator.ipc_bitcoin import Block, ChainSim, Tx, TxFactory
from bridge.emulator.ipc_values import CallEvent, splitmix

__all__ = [
    "REMOVAL_REASONS",
    "ChainScript",
    "NodeSim",
    "Peer",
    "banned_entry",
    "block_info",
    "tip_struct",
]


ROLE_ACTIVE: Final = {"validated": True, "historical": False}


# MemPoolRemovalReason values a node sends through transactionRemovedFromMempool: BLOCK
# (3) never is (CValidationInterface reports those through another signal).
REMOVAL_REASONS: Final = (0, 1, 2, 4, 5)


def _tx_event(method: str, tx: Tx, **params: Any) -> CallEvent:
    return CallEvent(
        method,
        {"tx": tx.raw, **params},
        extra={
            "txid": tx.txid,
            "wtxid": tx.wtxid,
            "vsize": tx.vsize,
            "weight": tx.weight,
            "segwit": tx.segwit,
            "txKind": tx.kind,
        },
    )


def block_info(chain: ChainSim, block: Block) -> dict[str, Any]:
    """BlockInfo as the node fills it for blockConnected/blockDisconnected."""
    return {
        "hash": block.hash,
        "prevHash": block.prev_hash,
        "height": block.height,
        "fileNumber": block.file_number,
        "dataPos": block.data_pos,
        "data": block.data,
        "chainTimeMax": chain.chain_time_max(),
    }


class ChainScript:
    """ChainNotifications events, driving the shared :class:`ChainSim`.

    Per block: three transactions enter the mempool; every other block one leaves for
    a reason other than BLOCK; a block confirms the two oldest and is connected, then
    updatedBlockTip; every third block chainStateFlushed; every fifth block a one-block
    reorg (blockDisconnected, blockConnected of a replacement, updatedBlockTip).
    """

    def __init__(self, chain: ChainSim, values: str, seed: int) -> None:
        self.chain = chain
        rng = random.Random(seed ^ 0x434841494E)  # noqa: S311 (seeded test data)
        self._txs = TxFactory(values, rng)
        self._pending: list[CallEvent] = []
        self._cycle = 0
        self._replaced: Block | None = None

    def next(self) -> CallEvent:
        if not self._pending:
            self._pending = self._next_cycle()
            self._pending.reverse()
        return self._pending.pop()

    def _next_cycle(self) -> list[CallEvent]:
        chain, cycle = self.chain, self._cycle
        self._cycle += 1
        out: list[CallEvent] = []
        for _ in range(3):
            tx = self._txs.next()
            chain.mempool.append(tx)
            out.append(_tx_event("transactionAddedToMempool", tx))
        if cycle % 2 == 1 and len(chain.mempool) > 2:
            tx = chain.mempool.pop(2)
            reason = REMOVAL_REASONS[(cycle // 2) % len(REMOVAL_REASONS)]
            out.append(_tx_event("transactionRemovedFromMempool", tx, reason=reason))
        # The block is built when its event is sent, so the tip moves in event order.
        out.append(CallEvent("blockConnected", {"__block__": "connect"}))
        out.append(CallEvent("updatedBlockTip", {}))
        if cycle % 3 == 2:
            out.append(CallEvent("chainStateFlushed", {"__locator__": True}))
        if cycle % 5 == 4:
            out.append(CallEvent("blockDisconnected", {"__block__": "disconnect"}))
            out.append(CallEvent("blockConnected", {"__block__": "replace"}))
            out.append(CallEvent("updatedBlockTip", {}))
        return out

    def realize(self, event: CallEvent) -> CallEvent:
        """Apply a block/flush placeholder to the chain at send time; others pass through."""
        action = event.params.get("__block__")
        chain = self.chain
        if action == "connect":
            block = chain.connect_block(chain.mempool[:2])
            return CallEvent(
                "blockConnected", {"role": dict(ROLE_ACTIVE), "block": block_info(chain, block)}
            )
        if action == "disconnect":
            block = chain.disconnect_tip()
            self._replaced = block
            return CallEvent("blockDisconnected", {"block": block_info(chain, block)})
        if action == "replace":
            old = self._replaced
            block = chain.connect_block(list(old.txs[1:]) if old is not None else [])
            return CallEvent(
                "blockConnected", {"role": dict(ROLE_ACTIVE), "block": block_info(chain, block)}
            )
        if "__locator__" in event.params:
            return CallEvent(
                "chainStateFlushed", {"role": dict(ROLE_ACTIVE), "locator": chain.locator()}
            )
        return event

    def malformed(self) -> CallEvent:
        """A transactionAddedToMempool whose tx is cut short (not a transaction)."""
        tx = self._txs.next()
        return CallEvent("transactionAddedToMempool", {"tx": tx.raw[:-5]}, malformed=True)


# SynchronizationState::POST_INIT: the node is synced and out of IBD.
SYNC_POST_INIT: Final = 2


@dataclass
class Peer:
    """One connected peer of the emulated node (what getNodesStats reports)."""

    id: int
    addr: str
    inbound: bool
    conn_type: int
    connected: int
    version: int = 70016
    subver: str = "/Satoshi:30.0.0/"
    services: int = 0x0C09  # NETWORK | WITNESS | NETWORK_LIMITED | P2P_V2
    starting_height: int = 0
    ping_us: int = 0
    bip152_to: bool = False
    bip152_from: bool = False


@dataclass
class NodeSim:
    """Peers, network switch and ban list: the state Node's polls and notifications show."""

    seed: int
    started: int = 1_750_000_000
    peers: list[Peer] = field(default_factory=list)
    network_active: bool = True
    banned: list[tuple[str, int, int]] = field(default_factory=list)  # subnet, created, until
    next_peer: int = 0
    alerts: int = 0
    _cycle: int = 0

    def __post_init__(self) -> None:
        for k in range(8):
            self.add_peer(inbound=k >= 6)

    def add_peer(self, inbound: bool) -> Peer:
        k = self.next_peer
        self.next_peer += 1
        rnd = splitmix(self.seed * 1000 + k)
        port = 40000 + k if inbound else 18444
        addr = f"10.{rnd & 0xFF}.{(rnd >> 8) & 0xFF}.{1 + (rnd >> 16) % 254}:{port}"
        peer = Peer(
            id=k,
            addr=addr,
            inbound=inbound,
            conn_type=0 if inbound else (1 if k % 4 else 4),
            connected=self.started + 60 * k,
            starting_height=100,
            ping_us=800 + (rnd >> 24) % 50_000,
            bip152_to=k % 3 == 0,
            bip152_from=k % 4 == 0,
        )
        self.peers.append(peer)
        return peer

    def counts(self) -> tuple[int, int]:
        """(inbound, outbound) peer counts."""
        n_in = sum(p.inbound for p in self.peers)
        return n_in, len(self.peers) - n_in

    def next(self, chain: ChainSim, advance_chain: bool) -> CallEvent:
        """The next state change, applied, as the notification the node sends for it."""
        step = self._cycle % 9
        cycle = self._cycle // 9
        self._cycle += 1
        if step == 0:
            self.add_peer(inbound=cycle % 2 == 0)
            return CallEvent(
                "handleNotifyNumConnectionsChanged", {"newNumConnections": len(self.peers)}
            )
        if step in (1, 2):
            if step == 2 and advance_chain:
                chain.connect_block(chain.mempool[:2])
            method = "handleNotifyHeaderTip" if step == 1 else "handleNotifyBlockTip"
            return CallEvent(
                method,
                {
                    "syncState": SYNC_POST_INIT,
                    "tip": tip_struct(chain),
                    "verificationProgress": 1.0,
                },
            )
        if step in (3, 4):
            self.network_active = step == 4
            return CallEvent(
                "handleNotifyNetworkActiveChanged", {"networkActive": self.network_active}
            )
        if step == 5:
            self.banned.append(
                (
                    f"192.0.2.{1 + cycle % 254}/32",
                    self.started + cycle,
                    self.started + cycle + 86_400,
                )
            )
            return CallEvent("handleBannedListChanged", {})
        if step == 6:
            if len(self.peers) > 1:
                self.peers.pop(0)
            return CallEvent(
                "handleNotifyNumConnectionsChanged", {"newNumConnections": len(self.peers)}
            )
        if step == 7:
            self.alerts += 1
            return CallEvent("handleNotifyAlertChanged", {})
        if self.banned:
            self.banned.pop(0)
        return CallEvent("handleBannedListChanged", {})

    def malformed(self, chain: ChainSim) -> CallEvent:
        """A NotifyBlockTip whose blockHash has 31 bytes."""
        tip = tip_struct(chain)
        tip["blockHash"] = tip["blockHash"][:31]
        return CallEvent(
            "handleNotifyBlockTip",
            {"syncState": SYNC_POST_INIT, "tip": tip, "verificationProgress": 1.0},
            malformed=True,
        )


def tip_struct(chain: ChainSim) -> dict[str, Any]:
    """BlockTip of the chain's tip."""
    return {"blockHeight": chain.height, "blockTime": chain.tip_time, "blockHash": chain.tip}


def banned_entry(subnet: str, created: int, until: int) -> tuple[bytes, bytes]:
    """(serialized CSubNet, serialized CBanEntry) for Node.getBanned.

    CSubNet as its V1 serialization (16-byte IPv6-mapped network, 16-byte netmask,
    valid flag); CBanEntry as version 1, create time, ban-until time. The emulator's
    choice; the PR's node-types.h encoding was not read.
    """
    ip, _, bits = subnet.partition("/")
    octets = bytes(int(x) for x in ip.split("."))
    network = bytes(10) + b"\xff\xff" + octets
    prefix = 96 + int(bits or 32)
    mask_int = ((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1)
    key = network + mask_int.to_bytes(16, "big") + b"\x01"
    value = (1).to_bytes(4, "little") + created.to_bytes(8, "little") + until.to_bytes(8, "little")
    return key, value
