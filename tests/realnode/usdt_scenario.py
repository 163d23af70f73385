"""One traced run of two real regtest nodes, and the node's own RPC truth about it.

The bridge is attached to node A before anything interesting happens; then A and B
connect (one v1 and one BIP324 v2 connection, so both header layouts are counted), A
mines, B mines (blocks reach A over P2P), the wallet sends and bumps a transaction,
invalid transactions are rejected, everything is mined, a peer is disconnected and A is
stopped. While A runs, everything the tests need to judge the records is asked of A
itself over RPC and kept in :class:`Truth`; afterwards the topics are read back.

Every RPC that makes A fire tracepoints is wrapped in a :class:`Window` of
CLOCK_MONOTONIC readings, the clock ``bpf_ktime_get_ns()`` stamps records with, so a
test can tell which call an event came from without trusting the order of streams.
Synchronisation is by polled conditions (``wait_until``), never by sleeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.config import BridgeSettings, load_settings
from bridge.consume import ConsumedRecord
from bridge.realnode import p2p
from bridge.realnode.binaries import CoreBinaries
from bridge.realnode.node import RegtestNode
from bridge.realnode.rpc import RpcError
from tests.support.pipeline import read_topics, running_bridge

NODE_ID = "regtest-a"
WALLET = "tracebridge"
# Below the largest P2P payloads of the run (headers, blocks with transactions), so the
# captured prefix and msg_truncated are checked against real messages too.
PAYLOAD_CAP = 256
# Blocks A mines, then B mines: A's coinbases at heights 1..10 are mature at 110.
A_BLOCKS = 60
B_BLOCKS = 50
SEND_BTC = Decimal("1.5")
# How long getpeerinfo's byte counters must stay unchanged before they are compared.
QUIET_S = 0.3
# A headers message announcing one header more than MAX_HEADERS_RESULTS: Core calls the
# peer misbehaving before reading any header.
TOO_MANY_HEADERS = 2001
AGENT = "/tracebridge-test:0.1/"
# CTxMemPool::check() (on by default on regtest) replays the mempool on a scratch coins
# view at this height (std::numeric_limits<int>::max()).
MEMPOOL_HEIGHT = 2**31 - 1


def sats(btc: float | str | Decimal) -> int:
    """BTC as JSON-RPC prints it, in satoshis, without float rounding surprises."""
    return int(Decimal(str(btc)) * 100_000_000)


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` if it never does."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Window:
    """CLOCK_MONOTONIC (ns) just before and just after something A did."""

    start_ns: int
    end_ns: int

    def __contains__(self, ts_ns: object) -> bool:
        return isinstance(ts_ns, int) and self.start_ns <= ts_ns <= self.end_ns

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class Clock:
    """Hands out :class:`Window` s around blocks of code."""

    @contextlib.contextmanager
    def window(self, out: list[Window]) -> Iterator[None]:
        start = time.monotonic_ns()
        try:
            yield
        finally:
            out.append(Window(start, time.monotonic_ns()))


@dataclass
class WalletTx:
    """A transaction A's wallet created (sendtoaddress or bumpfee), as A describes it."""

    kind: str  # "send" or "bump"
    txid: str
    window: Window
    destination: str
    amount_sat: int
    fee_sat: int  # -gettransaction.fee
    decoded: dict[str, Any]  # gettransaction(verbose).decoded
    hex: str
    input_values_sat: list[int]
    entry: dict[str, Any]  # getmempoolentry while it was in A's mempool

    @property
    def change_pos(self) -> int:
        """Index of the output that does not pay the destination (-1: none)."""
        others = [
            out["n"]
            for out in self.decoded["vout"]
            if out["scriptPubKey"].get("address") != self.destination
        ]
        assert len(others) <= 1, self.decoded
        return others[0] if others else -1

    @property
    def inputs(self) -> list[tuple[str, int]]:
        return [(vin["txid"], vin["vout"]) for vin in self.decoded["vin"]]


@dataclass
class Rejection:
    """A transaction A refused, with the reason A gave over RPC."""

    via: str  # "testmempoolaccept" or "sendrawtransaction"
    txid: str
    reason: str
    window: Window


@dataclass
class PeerSnapshot:
    """getpeerinfo at a moment when no byte counter moved for QUIET_S: ``before_ns`` is
    taken before the call, so every message event older than it is in these counts."""

    peers: list[dict[str, Any]]
    before_ns: int


@dataclass
class Truth:
    """What node A said over RPC while it ran."""

    attached: Window = Window(0, 0)
    run_wall_ns: tuple[int, int] = (0, 0)
    peers_at_connect: list[dict[str, Any]] = field(default_factory=list)
    a_as_b_sees_it: list[dict[str, Any]] = field(default_factory=list)  # B's getpeerinfo
    a_mining: list[Window] = field(default_factory=list)  # A's generatetoaddress calls
    b_mining: list[Window] = field(default_factory=list)  # B mining until A has it all
    a_mined_heights: set[int] = field(default_factory=set)
    blocks: list[dict[str, Any]] = field(default_factory=list)  # getblock verbosity 3
    raw_blocks: dict[str, bytes] = field(default_factory=dict)  # hash -> serialized block
    genesis_hash: str = ""
    wallet_txs: list[WalletTx] = field(default_factory=list)
    replaced_entry: dict[str, Any] = field(default_factory=dict)  # the bumped tx's entry
    rejections: list[Rejection] = field(default_factory=list)
    syncs: list[Window] = field(default_factory=list)  # gettxoutsetinfo calls
    txoutsets: list[dict[str, Any]] = field(default_factory=list)
    snapshot: PeerSnapshot = field(default_factory=lambda: PeerSnapshot([], 0))
    misbehaving_peer: dict[str, Any] = field(default_factory=dict)  # getpeerinfo entry
    misbehave: list[Window] = field(default_factory=list)
    disconnected: dict[str, Any] = field(default_factory=dict)  # getpeerinfo entry
    disconnect: list[Window] = field(default_factory=list)
    remaining_peers: list[dict[str, Any]] = field(default_factory=list)
    stop: list[Window] = field(default_factory=list)

    def peer(self, peer_id: int) -> dict[str, Any]:
        """getpeerinfo's entry for any peer A had during the run."""
        for peer in (*self.peers_at_connect, self.misbehaving_peer):
            if peer.get("id") == peer_id:
                return peer
        raise KeyError(f"A never listed peer {peer_id}")

    @property
    def tip_height(self) -> int:
        return len(self.blocks)

    def block_at(self, height: int) -> dict[str, Any]:
        block = self.blocks[height - 1]
        assert block["height"] == height
        return block

    def known_hashes(self) -> set[str]:
        """Display hex of every block, txid and wtxid A knew of."""
        known = {self.genesis_hash}
        for block in self.blocks:
            known.add(block["hash"])
            for tx in block["tx"]:
                known.update((tx["txid"], tx["hash"]))
        for wtx in self.wallet_txs:
            known.update((wtx.txid, wtx.decoded["hash"]))
        return known


@dataclass
class RealRun:
    """The records the bridge wrote for one run, and A's truth about that run."""

    records: list[ConsumedRecord]
    truth: Truth
    seconds: float


def settings(bootstrap: str, prefix: str, pid: int) -> BridgeSettings:
    return load_settings(
        None,
        {
            "node_id": NODE_ID,
            "usdt": {"pid": pid, "reattach": False, "payload_capture_bytes": PAYLOAD_CAP},
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "linger_ms": 5},
            "heartbeat_interval_s": 1.0,
        },
    )


def connect(source: RegtestNode, target: RegtestNode, *, v2: bool) -> None:
    """``source`` opens a manual connection to ``target`` (BIP324 v2 or plain v1) and
    waits until each end has the other's version: the handshake reached both."""
    before = {peer["id"] for peer in target.call("getpeerinfo")}
    source.call("addnode", f"127.0.0.1:{target.p2p_port}", "onetry", v2)

    def outbound() -> list[dict[str, Any]]:
        return [
            p
            for p in source.call("getpeerinfo")
            if not p["inbound"] and p["addr"] == f"127.0.0.1:{target.p2p_port}" and p["version"]
        ]

    def handshaken() -> bool:
        fresh = [p for p in target.call("getpeerinfo") if p["id"] not in before]
        return any(p["version"] and p["inbound"] for p in fresh) and bool(outbound())

    wait_until(handshaken, f"{source.name} -> {target.name} handshake")
    (peer,) = outbound()
    assert peer["transport_protocol_type"] == ("v2" if v2 else "v1"), peer


def misbehave(a: RegtestNode, truth: Truth, clock: Clock) -> None:
    """A raw v1 peer shakes hands, then announces 2001 headers: A reports it
    misbehaving (net:misbehaving_connection) and drops it (a local peer is disconnected,
    not discouraged)."""
    with socket.create_connection(("127.0.0.1", a.p2p_port), timeout=30) as peer:
        addr = f"127.0.0.1:{peer.getsockname()[1]}"
        peer.sendall(p2p.message("version", p2p.version_payload(a.p2p_port, AGENT)))

        def listed() -> bool:
            found = [p for p in a.call("getpeerinfo") if p["addr"] == addr and p["version"]]
            if found:
                truth.misbehaving_peer = found[0]
            return bool(found)

        wait_until(listed, "A to take the raw peer's version")
        with clock.window(truth.misbehave):
            peer.sendall(
                p2p.message("verack")
                + p2p.message("headers", b"\xfd" + struct.pack("<H", TOO_MANY_HEADERS))
            )
            while peer.recv(65536):  # until A closes the connection
                pass


def same_tip(*nodes: RegtestNode) -> Callable[[], bool]:
    return lambda: len({node.call("getbestblockhash") for node in nodes}) == 1


def quiet_peer_snapshot(node: RegtestNode) -> PeerSnapshot:
    """getpeerinfo once its byte counters stood still for QUIET_S (polled, not assumed)."""
    deadline = time.monotonic() + 60
    previous = counters(node.call("getpeerinfo"))
    while time.monotonic() < deadline:
        time.sleep(QUIET_S)
        before_ns = time.monotonic_ns()
        peers = node.call("getpeerinfo")
        if counters(peers) == previous:
            # Nothing was accounted between the two calls, so the events stamped before
            # the second call began are exactly what these counters hold.
            return PeerSnapshot(peers, before_ns)
        previous = counters(peers)
    raise TimeoutError("A's P2P byte counters never stood still")


def counters(peers: list[dict[str, Any]]) -> list[tuple[int, Any, Any]]:
    return [(p["id"], p["bytessent_per_msg"], p["bytesrecv_per_msg"]) for p in peers]


def _wallet_tx(a: RegtestNode, kind: str, txid: str, window: Window, dest: str) -> WalletTx:
    got = a.call("gettransaction", txid, True, True, wallet=WALLET)
    decoded = got["decoded"]
    values = []
    for vin in decoded["vin"]:
        prev = a.call("gettransaction", vin["txid"], True, True, wallet=WALLET)
        values.append(sats(prev["decoded"]["vout"][vin["vout"]]["value"]))
    paid = [out for out in decoded["vout"] if out["scriptPubKey"].get("address") == dest]
    return WalletTx(
        kind=kind,
        txid=txid,
        window=window,
        destination=dest,
        amount_sat=sum(sats(out["value"]) for out in paid),
        fee_sat=-sats(got["fee"]),
        decoded=decoded,
        hex=got["hex"],
        input_values_sat=values,
        entry=a.call("getmempoolentry", txid),
    )


def _reject(a: RegtestNode, truth: Truth, clock: Clock, hex_tx: str) -> None:
    """testmempoolaccept: A says why it refuses the transaction (mempool:rejected)."""
    windows: list[Window] = []
    with clock.window(windows):
        (verdict,) = a.call("testmempoolaccept", [hex_tx])
    assert not verdict["allowed"], verdict
    truth.rejections.append(
        Rejection("testmempoolaccept", verdict["txid"], verdict["reject-reason"], windows[0])
    )


def _make_rejections(a: RegtestNode, truth: Truth, clock: Clock, dest: str) -> None:
    """A zero-fee transaction (min relay fee not met), the same through sendrawtransaction,
    and one with a dust output: three refusals A explains in its own words."""
    coin = next(c for c in a.call("listunspent", 100, 9999, wallet=WALLET) if c["spendable"])
    spend = [{"txid": coin["txid"], "vout": coin["vout"]}]
    value = Decimal(str(coin["amount"]))
    dust_to = a.call("getnewaddress", wallet=WALLET)
    unsigned = {
        "zero-fee": a.call("createrawtransaction", spend, {dest: str(value)}),
        "dust": a.call(
            "createrawtransaction",
            spend,
            {dest: str(value - Decimal("0.0001") - Decimal("0.000001")), dust_to: "0.000001"},
        ),
    }
    signed = {
        name: a.call("signrawtransactionwithwallet", raw, wallet=WALLET)["hex"]
        for name, raw in unsigned.items()
    }
    _reject(a, truth, clock, signed["zero-fee"])
    _reject(a, truth, clock, signed["dust"])
    windows: list[Window] = []
    with clock.window(windows), pytest.raises(RpcError) as refused:
        a.call("sendrawtransaction", signed["zero-fee"])
    assert refused.value.code == -26, refused.value  # RPC_VERIFY_REJECTED
    txid = a.call("decoderawtransaction", signed["zero-fee"])["txid"]
    truth.rejections.append(
        Rejection("sendrawtransaction", txid, refused.value.message, windows[0])
    )


def drive(a: RegtestNode, b: RegtestNode, truth: Truth) -> None:
    """Everything A does while traced, with A's account of each step."""
    clock = Clock()
    connect(a, b, v2=False)  # A's outbound: plain v1, 24-byte headers
    connect(b, a, v2=True)  # A's inbound: BIP324 v2, encrypted packets
    truth.peers_at_connect = a.call("getpeerinfo")
    truth.a_as_b_sees_it = b.call("getpeerinfo")
    truth.genesis_hash = a.call("getblockhash", 0)

    a.call("createwallet", WALLET)
    mine_to = a.call("getnewaddress", wallet=WALLET)
    with clock.window(truth.a_mining):
        a.call("generatetoaddress", A_BLOCKS, mine_to)
    truth.a_mined_heights.update(range(1, A_BLOCKS + 1))
    wait_until(same_tip(a, b), "B to sync A's blocks")
    with clock.window(truth.b_mining):
        b.call("generatetoaddress", B_BLOCKS, mine_to)  # to A's wallet, over P2P
        wait_until(same_tip(a, b), "A to receive B's blocks")

    with clock.window(truth.syncs):
        truth.txoutsets.append(a.call("gettxoutsetinfo"))

    dest = a.call("getnewaddress", wallet=WALLET)
    _make_rejections(a, truth, clock, dest)

    windows: list[Window] = []
    with clock.window(windows):
        sent = a.call("sendtoaddress", dest, str(SEND_BTC), wallet=WALLET)
    truth.wallet_txs.append(_wallet_tx(a, "send", sent, windows[-1], dest))
    truth.replaced_entry = a.call("getmempoolentry", sent)
    with clock.window(windows):
        bumped = a.call("bumpfee", sent, wallet=WALLET)["txid"]
    truth.wallet_txs.append(_wallet_tx(a, "bump", bumped, windows[-1], dest))
    assert set(a.call("getrawmempool")) == {bumped}
    wait_until(lambda: bumped in b.call("getrawmempool"), "B to receive the replacement")

    with clock.window(truth.a_mining):
        a.call("generatetoaddress", 1, mine_to)
    truth.a_mined_heights.add(A_BLOCKS + B_BLOCKS + 1)
    assert a.call("getrawmempool") == []
    wait_until(same_tip(a, b), "B to sync the last block")

    tip = a.call("getblockcount")
    for height in range(1, tip + 1):
        block_hash = a.call("getblockhash", height)
        truth.blocks.append(a.call("getblock", block_hash, 3))
        truth.raw_blocks[block_hash] = bytes.fromhex(a.call("getblock", block_hash, 0))

    truth.snapshot = quiet_peer_snapshot(a)
    (inbound,) = [p for p in truth.snapshot.peers if p["inbound"]]
    misbehave(a, truth, clock)
    truth.disconnected = inbound
    with clock.window(truth.disconnect):
        a.call("disconnectnode", "", inbound["id"])
        wait_until(
            lambda: inbound["id"] not in {p["id"] for p in a.call("getpeerinfo")},
            "A to drop the disconnected peer",
        )
    truth.remaining_peers = a.call("getpeerinfo")

    with clock.window(truth.syncs):
        truth.txoutsets.append(a.call("gettxoutsetinfo"))
    with clock.window(truth.stop):
        assert a.stop() == 0


def run(
    binaries: CoreBinaries, bootstrap: str, tmp_path: Path, prefix: str | None = None
) -> RealRun:
    """Two nodes, the bridge on A from before their first connection to after A's stop."""
    began = time.monotonic()
    prefix = prefix or f"real{uuid.uuid4().hex[:10]}"
    truth = Truth()
    with (
        RegtestNode(binaries.bitcoind, tmp_path / "a", name="a") as a,
        RegtestNode(binaries.bitcoind, tmp_path / "b", name="b") as b,
    ):
        a.start()
        b.start()
        wall_start = time.time_ns()
        with running_bridge(settings(bootstrap, prefix, a.pid), tmp_path) as bridge:
            attached_from = time.monotonic_ns()
            bridge.wait_for("attached")
            truth.attached = Window(attached_from, time.monotonic_ns())
            drive(a, b, truth)
            bridge.wait_for("stopped", timeout=120)
        truth.run_wall_ns = (wall_start, time.time_ns())
    records = read_topics(bootstrap, prefix)
    return RealRun(records, truth, time.monotonic() - began)
