"""The emulated IPC node, driven by a small pycapnp client over its real Unix socket.

The client here is written from the reference (bitcoin-tracing.md section 3.4), not
from the bridge: it passes its own ThreadMap to Init.construct so the node can run
context-taking callbacks on it, and checks every value against the node's record and
every count against its report. Transactions are parsed by an independent parser
below, so txid/wtxid/vsize are checked, not repeated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

capnp = pytest.importorskip("capnp")

from bridge.emulator.ipc_node import IpcNode, IpcNodeError  # noqa: E402
from bridge.emulator.ipc_report import IpcReport, read_ipc_records  # noqa: E402
from bridge.emulator.ipc_scenario import IpcScenario, PingStage  # noqa: E402
from bridge.emulator.ipc_values import REAL_MSG_TYPES  # noqa: E402
from bridge.sources.ipc.schemas import Version, load_schema_set  # noqa: E402

pytestmark = pytest.mark.ipc

S = load_schema_set("proposed")
STD = "std::exception: "


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Run a coroutine inside pycapnp's KJ loop, as every pycapnp client must."""

    async def main() -> Any:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(capnp.run(main()))


# ------------------------------------------------------------------------------------
# A minimal client.
# ------------------------------------------------------------------------------------


def thread_classes(schemas: Any) -> tuple[type, type]:
    """Thread and ThreadMap servers for one schema set.

    Server classes must come from the same SchemaParser as the client: pycapnp refuses a
    ThreadMap built from another set's schema ("Value type mismatch"), IDs alike or not.
    """

    class ClientThread(schemas.proxy.Thread.Server):  # type: ignore[misc]
        def __init__(self, name: str) -> None:
            self.name = name

        async def getName(self, **_: Any) -> str:
            return self.name

    class ClientThreadMap(schemas.proxy.ThreadMap.Server):  # type: ignore[misc]
        """Lets the node make threads here, for the context-taking callbacks."""

        def __init__(self) -> None:
            self.made: list[str] = []

        async def makeThread(self, name: str, **_: Any) -> Any:
            self.made.append(name)
            return ClientThread(f"client-{name}")

    return ClientThread, ClientThreadMap


ClientThread, ClientThreadMap = thread_classes(S)


class Conn:
    def __init__(self, init: Any, ctx: Any, thread_map: Any, schemas: Any, client: Any) -> None:
        self._client = client  # the connection lives as long as this Conn
        self.init = init
        self.ctx = ctx
        self.thread_map = thread_map
        self.s = schemas

    @classmethod
    async def open(cls, path: Path, schemas: Any = S, thread_map: bool = True) -> Conn:
        stream = await capnp.AsyncIoStream.create_unix_connection(str(path))
        client = capnp.TwoPartyClient(stream)
        init = client.bootstrap().cast_as(schemas.init.Init)
        tm = thread_classes(schemas)[1]() if schemas is not S else ClientThreadMap()
        node_tm = (init.construct(tm) if thread_map else init.construct()).threadMap
        ctx = schemas.proxy.Context()
        ctx.thread = node_tm.makeThread("pytest").result
        return cls(init, ctx, tm, schemas, client)


class Utxo(S.require("tracing_utxo").UtxoCacheTrace.Server):  # type: ignore[misc]
    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.destroyed = 0

    def _take(self, method: str, info: Any) -> None:
        self.got.append(
            (
                method,
                {
                    "outpointHash": bytes(info.outpointHash).hex(),
                    "outpointN": info.outpointN,
                    "height": info.height,
                    "value": info.value,
                    "isCoinbase": info.isCoinbase,
                },
            )
        )

    async def destroy(self, context: Any, **_: Any) -> None:
        self.destroyed += 1

    async def add(self, utxoInfo: Any, **_: Any) -> None:
        self._take("add", utxoInfo)

    async def spend(self, utxoInfo: Any, **_: Any) -> None:
        self._take("spend", utxoInfo)

    async def uncache(self, utxoInfo: Any, **_: Any) -> None:
        self._take("uncache", utxoInfo)


def _text(reader: Any, name: str) -> Any:
    try:
        return getattr(reader, name)
    except UnicodeDecodeError:
        return None


class Net(S.require("tracing_net").NetMessageTrace.Server):  # type: ignore[misc]
    def __init__(self, delay: float = 0.0, read: bool = True) -> None:
        self.delay = delay
        self.read = read
        self.messages: list[dict[str, Any]] = []
        self.batches: list[tuple[int, int]] = []
        self.threads: set[str] = set()
        self.destroyed = 0

    async def destroy(self, context: Any, **_: Any) -> None:
        self.destroyed += 1

    async def messages_context(self, call: Any) -> None:
        p = call.params
        self.threads.add((await p.context.thread.getName()).result)
        msgs = p.messages
        self.batches.append((len(msgs), p.dropped))
        if self.read:
            for m in msgs:
                self.messages.append(
                    {
                        "inbound": m.inbound,
                        "peerId": m.peerId,
                        "peerAddr": m.peerAddr,
                        "connType": m.connType,
                        "msgType": m.msgType,
                        "msgSize": m.msgSize,
                        "payload": bytes(m.payload).hex(),
                        "timestampUs": m.timestampUs,
                    }
                )
        if self.delay:
            await asyncio.sleep(self.delay)

    @property
    def received(self) -> int:
        return sum(n for n, _ in self.batches)

    @property
    def dropped(self) -> int:
        return sum(d for _, d in self.batches)


class Chain(S.require("chain").ChainNotifications.Server):  # type: ignore[misc]
    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []

    async def destroy(self, context: Any, **_: Any) -> None:
        pass

    async def transactionAddedToMempool(self, context: Any, tx: bytes, **_: Any) -> None:
        self.got.append(("transactionAddedToMempool", {"tx": bytes(tx)}))

    async def transactionRemovedFromMempool(
        self, context: Any, tx: bytes, reason: int, **_: Any
    ) -> None:
        self.got.append(("transactionRemovedFromMempool", {"tx": bytes(tx), "reason": reason}))

    async def blockConnected(self, context: Any, role: Any, block: Any, **_: Any) -> None:
        self.got.append(("blockConnected", {"role": role.to_dict(), "block": _block(block)}))

    async def blockDisconnected(self, context: Any, block: Any, **_: Any) -> None:
        self.got.append(("blockDisconnected", {"block": _block(block)}))

    async def updatedBlockTip(self, context: Any, **_: Any) -> None:
        self.got.append(("updatedBlockTip", {}))

    async def chainStateFlushed(self, context: Any, role: Any, locator: bytes, **_: Any) -> None:
        self.got.append(("chainStateFlushed", {"role": role.to_dict(), "locator": bytes(locator)}))


def _block(b: Any) -> dict[str, Any]:
    return {
        "hash": bytes(b.hash),
        "prevHash": bytes(b.prevHash),
        "height": b.height,
        "fileNumber": b.fileNumber,
        "dataPos": b.dataPos,
        "data": bytes(b.data),
        "chainTimeMax": b.chainTimeMax,
    }


class BlockTip(S.require("node").NotifyBlockTipCallback.Server):  # type: ignore[misc]
    def __init__(self) -> None:
        self.got: list[tuple[int, int, str, float]] = []

    async def destroy(self, context: Any, **_: Any) -> None:
        pass

    async def call(
        self, context: Any, syncState: int, tip: Any, verificationProgress: float, **_: Any
    ) -> None:
        self.got.append(
            (syncState, tip.blockHeight, bytes(tip.blockHash).hex(), verificationProgress)
        )


class NumConnections(S.require("node").NotifyNumConnectionsChangedCallback.Server):  # type: ignore[misc]
    def __init__(self) -> None:
        self.got: list[int] = []

    async def destroy(self, context: Any, **_: Any) -> None:
        pass

    async def call(self, context: Any, newNumConnections: int, **_: Any) -> None:
        self.got.append(newNumConnections)


# ------------------------------------------------------------------------------------
# An independent transaction/block parser (BIP144).
# ------------------------------------------------------------------------------------


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.d, self.i = data, 0

    def take(self, n: int) -> bytes:
        assert self.i + n <= len(self.d), "truncated"
        self.i += n
        return self.d[self.i - n : self.i]

    def varint(self) -> int:
        first = self.take(1)[0]
        return (
            first
            if first < 0xFD
            else int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")
        )


def parse_tx(cur: Cursor) -> tuple[bytes, bytes, int]:
    """(txid, wtxid, vsize) of the transaction at the cursor."""
    start = cur.i
    version = cur.take(4)
    segwit = cur.d[cur.i : cur.i + 2] == b"\x00\x01"
    if segwit:
        cur.take(2)
    body_start = cur.i
    n_in = cur.varint()
    for _ in range(n_in):
        cur.take(36)
        cur.take(cur.varint())
        cur.take(4)
    for _ in range(cur.varint()):
        cur.take(8)
        cur.take(cur.varint())
    body = cur.d[body_start : cur.i]
    if segwit:
        for _ in range(n_in):
            for _ in range(cur.varint()):
                cur.take(cur.varint())
    locktime = cur.take(4)
    full = cur.d[start : cur.i]
    stripped = version + body + locktime
    weight = 3 * len(stripped) + len(full)
    return sha256d(stripped), sha256d(full), (weight + 3) // 4


def parse_one_tx(raw: bytes) -> tuple[bytes, bytes, int]:
    cur = Cursor(raw)
    out = parse_tx(cur)
    assert cur.i == len(raw), "trailing bytes"
    return out


def merkle(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        if len(hashes) % 2:
            hashes.append(hashes[-1])
        hashes = [sha256d(hashes[i] + hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


# ------------------------------------------------------------------------------------
# Helpers.
# ------------------------------------------------------------------------------------


def events(record: Path, stream: str, sub: int | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in read_ipc_records(record)
        if r["kind"] == "event" and r["stream"] == stream and (sub is None or r["sub"] == sub)
    ]


def check_invariant(report: IpcReport) -> None:
    for s in report.subscriptions:
        assert s.offered == s.sent + s.dropped + s.discarded + s.failed + s.interrupted, s


@pytest.fixture
def node() -> Any:
    with IpcNode() as n:
        yield n


# ------------------------------------------------------------------------------------
# Merged interfaces.
# ------------------------------------------------------------------------------------


def test_echo_thread_map_and_context_check(node: IpcNode) -> None:
    node.start(IpcScenario(block_interval=0))

    async def go() -> dict[str, Any]:
        c = await Conn.open(node.socket)
        echo = c.init.makeEcho(c.ctx).result
        out: dict[str, Any] = {"echo": (await echo.echo(c.ctx, "héllo ⚡")).result}
        out["thread"] = (await c.ctx.thread.getName()).result
        for ctx in (S.proxy.Context(), _foreign_context()):
            with pytest.raises(capnp.KjException) as err:
                await echo.echo(ctx, "x")
            out.setdefault("errors", []).append(err.value.description)
        await echo.destroy(c.ctx)
        return out

    out = run(go)
    assert out["echo"] == "héllo ⚡"
    assert out["thread"].startswith(f"pytest-{node.pid}/")
    # A null thread and a thread the node did not make are both refused, as
    # libmultiprocess refuses them.
    assert all(e.endswith(STD + "invalid thread handle") for e in out["errors"]), out["errors"]
    report = node.stop()
    assert report.interrupted
    assert report.connections == 1


def _foreign_context() -> Any:
    ctx = S.proxy.Context()
    ctx.thread = S.proxy.Thread._new_client(ClientThread("not-the-nodes"))
    return ctx


def test_mining_tip_advances_and_wait_tip_changed(node: IpcNode) -> None:
    node.start(IpcScenario(block_interval=0.3))

    async def go() -> list[Any]:
        c = await Conn.open(node.socket)
        mining = c.init.makeMining(c.ctx).result
        assert (await mining.isTestChain(c.ctx)).result is True
        assert (await mining.isInitialBlockDownload(c.ctx)).result is False
        tip = await mining.getTip(c.ctx)
        assert tip.hasResult
        first = (bytes(tip.result.hash), tip.result.height)
        t0 = time.monotonic()
        changed = (await mining.waitTipChanged(c.ctx, first[0], 10_000.0)).result
        waited = time.monotonic() - t0
        # A timeout in milliseconds returns the unchanged tip.
        same = (await mining.waitTipChanged(c.ctx, bytes(changed.hash), 1.0)).result
        return [
            first,
            (bytes(changed.hash), changed.height),
            waited,
            (bytes(same.hash), same.height),
        ]

    first, changed, waited, same = run(go)
    assert first[1] == 100
    assert changed[1] == first[1] + 1
    assert changed[0] != first[0]
    assert waited < 2.0
    assert same[1] in (changed[1], changed[1] + 1)
    # Regtest proof of work: the block hash is below 0x7fffff << 232.
    assert int.from_bytes(changed[0], "little") <= 0x7FFFFF << 232
    assert node.stop().tip_height >= changed[1]


def test_v30_v31_master_init_ordinals(tmp_path: Path) -> None:
    versions: tuple[Version, ...] = ("v30", "v31", "master")
    for version in versions:
        schemas = load_schema_set(version)
        with IpcNode() as n:
            n.start(IpcScenario(version=version, block_interval=0))

            async def go(
                n: IpcNode = n, schemas: Any = schemas, version: str = version
            ) -> dict[str, Any]:
                c = await Conn.open(n.socket, schemas)
                out: dict[str, Any] = {}
                mining = c.init.makeMining(c.ctx).result
                out["height"] = (await mining.getTip(c.ctx)).result.height
                if version != "v30":
                    with pytest.raises(capnp.KjException) as err:
                        await c.init.makeMiningOld2()
                    out["old2"] = err.value.description
                if version == "master":
                    rpc = c.init.makeRpc(c.ctx).result
                    req = json.dumps({"method": "getblockcount", "params": [], "id": 7})
                    out["rpc"] = json.loads((await rpc.executeRpc(c.ctx, req, "/", "user")).result)
                    bad = json.dumps({"jsonrpc": "2.0", "method": "nosuch", "id": 8})
                    out["rpc_bad"] = json.loads(
                        (await rpc.executeRpc(c.ctx, bad, "/", "user")).result
                    )
                # The wrong schema set: a v31 client's makeMining @3 is unknown to a
                # v30 node; a v30 client's makeMining @2 is the stub on v31 and later.
                other = load_schema_set("v31" if version == "v30" else "v30")
                cross = await Conn.open(n.socket, other)
                with pytest.raises(capnp.KjException) as err:
                    await cross.init.makeMining(cross.ctx)
                out["cross"] = (str(err.value.type), err.value.description)
                return out

            out = run(go)
            assert out["height"] == 100
            if version != "v30":
                assert out["old2"].endswith(
                    STD + "Old mining interface (@2) not supported. Please update your client!"
                ), out["old2"]
            if version == "master":
                assert out["rpc"] == {"result": 100, "error": None, "id": 7}
                assert out["rpc_bad"]["error"]["code"] == -32601
            if version == "v30":
                assert out["cross"][0] == "UNIMPLEMENTED", out["cross"]
            else:
                assert out["cross"][1].endswith("Please update your client!"), out["cross"]


# ------------------------------------------------------------------------------------
# Proposed interfaces.
# ------------------------------------------------------------------------------------


def test_utxo_callbacks_exact_values_and_counts(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(IpcScenario(streams=("utxo",), count=41, wait_start=True, linger=True), record)
    cb = Utxo()

    async def go() -> None:
        c = await Conn.open(node.socket)
        tracing = c.init.makeUtxoTracing(c.ctx).result
        handler = (await tracing.traceUtxoCache(c.ctx, cb)).result
        node.go()
        while len(cb.got) < 41:
            await asyncio.sleep(0.01)
        await handler.destroy(c.ctx)
        while not cb.destroyed:
            await asyncio.sleep(0.01)

    run(go)
    report = node.stop()
    rec = events(record, "utxo")
    assert [(r["method"], r["utxoInfo"]) for r in rec] == cb.got
    assert [r["seq"] for r in rec] == list(range(41))
    st = report.streams["utxo"]
    assert (st.generated, st.offered, st.sent, st.calls, st.subscriptions, st.unsubscribes) == (
        41,
        41,
        41,
        41,
        1,
        1,
    )
    sub = report.subscriptions[0]
    assert (sub.ended, sub.callback_destroyed) == ("destroy", True)
    assert cb.destroyed == 1
    # Edge values reach the client intact: zero, MAX_MONEY, INT64 bounds, UINT32_MAX.
    values = {info["value"] for _, info in cb.got}
    assert {0, -1, -(2**63), 2**63 - 1, 2_100_000_000_000_000} <= values
    assert 2**32 - 1 in {info["outpointN"] for _, info in cb.got}
    check_invariant(report)


def test_net_batches_exact(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(IpcScenario(streams=("net",), count=300, wait_start=True), record)
    cb = Net()

    async def go() -> None:
        c = await Conn.open(node.socket)
        tracing = c.init.makeNetTracing(c.ctx).result
        opts = S.require("tracing_net").NetMessageTraceOptions(
            maxPayloadBytes=300, maxBatchEvents=64
        )
        # Keep the Handler: releasing its last reference unsubscribes.
        _handler = (await tracing.traceNetMessages(c.ctx, opts, cb)).result
        node.go()
        while cb.received < 300:
            await asyncio.sleep(0.01)

    run(go)
    report = node.wait(30)
    rec = events(record, "net")
    fields = (
        "inbound",
        "peerId",
        "peerAddr",
        "connType",
        "msgType",
        "msgSize",
        "payload",
        "timestampUs",
    )
    assert [{k: r[k] for k in fields} for r in rec] == cb.messages
    assert [r["seq"] for r in rec] == list(range(300))
    assert all(n <= 64 for n, _ in cb.batches)
    batches = [r for r in read_ipc_records(record) if r["kind"] == "batch"]
    assert [(b["count"], b["dropped"]) for b in batches] == cb.batches
    # Payload cut at maxPayloadBytes, msgSize full (the edge table has 4,000,000).
    assert max(m["msgSize"] for m in cb.messages) == 4_000_000
    assert max(len(m["payload"]) // 2 for m in cb.messages) == 300
    assert all(len(m["payload"]) // 2 == min(m["msgSize"], 300) for m in cb.messages)
    # Timestamps are CLOCK_MONOTONIC microseconds from this machine.
    now = time.monotonic_ns() // 1000
    assert all(now - 60_000_000 < m["timestampUs"] <= now for m in cb.messages)
    # The callback ran on the thread the node made through our ThreadMap.
    assert cb.threads == {"client-b-nettrace"}
    st = report.streams["net"]
    assert (st.generated, st.sent, st.dropped, st.batches) == (300, 300, 0, len(cb.batches))
    check_invariant(report)


def test_net_drops_when_client_is_slow(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(IpcScenario(streams=("net",), count=1500, rate=3000, wait_start=True), record)
    cb = Net(delay=0.05)

    async def go() -> None:
        c = await Conn.open(node.socket)
        tracing = c.init.makeNetTracing(c.ctx).result
        opts = S.require("tracing_net").NetMessageTraceOptions(maxQueueEvents=50, outbound=False)
        # Keep the Handler: releasing its last reference unsubscribes.
        _handler = (await tracing.traceNetMessages(c.ctx, opts, cb)).result
        node.go()
        while not cb.destroyed:
            await asyncio.sleep(0.02)

    run(go)
    report = node.wait(30)
    sub = report.subscriptions[0]
    assert sub.options is not None
    assert sub.options["maxQueueEvents"] == 50
    assert all(m["inbound"] for m in cb.messages), "outbound filtered out"
    assert sub.offered == 750, "half the events are inbound"
    assert sub.dropped > 0
    assert cb.dropped == sub.dropped == sub.dropped_reported
    # Exact loss accounting: what the node offered = received + reported drops.
    assert cb.received + cb.dropped == sub.offered
    assert (sub.sent, sub.discarded, sub.failed) == (cb.received, 0, 0)
    assert all(n <= 50 for n, _ in cb.batches)
    assert len(events(record, "net")) == cb.received
    check_invariant(report)


def test_ping_mode_fast_batches_exact(tmp_path: Path) -> None:
    """Ping batches are built by patching bytes; two subscribers check every value."""
    record = tmp_path / "rec.jsonl"
    stages = (PingStage(2000, 0.3), PingStage(0, 0.3))
    with IpcNode() as node:
        node.start(
            IpcScenario(streams=("net",), ping=True, stages=stages, ping_size=40, wait_start=True),
            record,
        )
        both, pings = Net(), Net()

        async def go() -> None:
            a = await Conn.open(node.socket)
            b = await Conn.open(node.socket)
            ta = a.init.makeNetTracing(a.ctx).result
            tb = b.init.makeNetTracing(b.ctx).result
            opts_a = S.require("tracing_net").NetMessageTraceOptions(
                maxPayloadBytes=64, maxBatchEvents=500
            )
            opts_b = S.require("tracing_net").NetMessageTraceOptions(
                outbound=False, maxPayloadBytes=0, maxQueueEvents=3000
            )
            _handlers = [
                (await ta.traceNetMessages(a.ctx, opts_a, both)).result,
                (await tb.traceNetMessages(b.ctx, opts_b, pings)).result,
            ]
            node.go()
            while not (both.destroyed and pings.destroyed):
                await asyncio.sleep(0.02)

        run(go)
        report = node.wait(30)
    fields = (
        "inbound",
        "peerId",
        "peerAddr",
        "connType",
        "msgType",
        "msgSize",
        "payload",
        "timestampUs",
    )
    for sub_id, cb in ((1, both), (2, pings)):
        rec = events(record, "net", sub_id)
        assert [{k: r[k] for k in fields} for r in rec] == cb.messages
        sub = report.subscription(sub_id)
        assert cb.received + cb.dropped == sub.offered
        assert sub.sent == cb.received
    m = both.messages
    assert {x["msgType"] for x in m} == {"ping", "pong"}
    for x in m:
        assert x["msgSize"] == 40
        assert len(x["payload"]) == 80
        assert x["inbound"] == (x["msgType"] == "ping")
        assert x["peerAddr"] == "127.0.0.1:50412"
        assert x["connType"] == "inbound"
    # Each ping's pong carries the same nonce; nonces count up.
    nonces = [int.from_bytes(bytes.fromhex(x["payload"][:16]), "little") for x in m]
    seqs = [r["seq"] for r in events(record, "net", 1)]
    assert nonces == [s // 2 for s in seqs]
    assert all(x["msgType"] == "ping" and x["payload"] == "" for x in pings.messages)
    assert [s.rate for s in report.stages] == [2000, 0]
    assert report.stages[0].pings == pytest.approx(600, rel=0.1)
    assert report.stages[1].events_per_s > 0
    assert report.stages[1].cpu_us_per_event is not None
    check_invariant(report)


def test_chain_notifications_with_real_transactions(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(IpcScenario(streams=("chain",), count=80, wait_start=True, linger=True), record)
    cb = Chain()

    async def go() -> Any:
        c = await Conn.open(node.socket)
        chain = c.init.makeChain(c.ctx).result
        _handler = (await chain.handleNotifications(c.ctx, cb)).result
        node.go()
        while len(cb.got) < 80:
            await asyncio.sleep(0.01)
        height = (await chain.getHeight(c.ctx)).result
        fee = (await chain.estimateSmartFee(c.ctx, 6, False, False)).result
        return height, bytes(fee)

    height, fee = run(go)
    report = node.stop()
    rec = events(record, "chain")
    assert [r["method"] for r in rec] == [m for m, _ in cb.got]
    txs = 0
    segwit_seen = legacy_seen = False
    for r, (method, got) in zip(rec, cb.got, strict=True):
        if "tx" in got:
            assert got["tx"].hex() == r["tx"]
            txid, wtxid, vsize = parse_one_tx(got["tx"])
            assert (txid.hex(), wtxid.hex(), vsize) == (r["txid"], r["wtxid"], r["vsize"])
            segwit_seen |= txid != wtxid
            legacy_seen |= txid == wtxid
            txs += 1
            if method == "transactionRemovedFromMempool":
                assert got["reason"] == r["reason"]
                assert got["reason"] in (0, 1, 2, 4, 5)
        if "block" in got:
            b = got["block"]
            assert {k: (v.hex() if isinstance(v, bytes) else v) for k, v in b.items()} == r["block"]
            header = b["data"][:80]
            assert sha256d(header) == b["hash"]
            assert header[4:36] == b["prevHash"]
            cur = Cursor(b["data"])
            cur.take(80)
            ids = [parse_tx(cur)[0] for _ in range(cur.varint())]
            assert cur.i == len(b["data"])
            assert merkle(ids) == header[36:68]
        if method == "chainStateFlushed":
            assert got["locator"].hex() == r["locator"]
            assert got["role"] == {"validated": True, "historical": False}
    assert txs > 20
    assert segwit_seen
    assert legacy_seen
    assert "blockDisconnected" in [m for m, _ in cb.got], "the script includes a reorg"
    connected = [g["block"] for m, g in cb.got if m == "blockConnected"]
    assert height == connected[-1]["height"]
    assert len(fee) == 8
    assert int.from_bytes(fee, "little") > 0
    st = report.streams["chain"]
    assert (st.generated, st.sent) == (80, 80)
    check_invariant(report)


def test_node_notifications_and_polls(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(
        IpcScenario(streams=("node_notifications",), count=27, wait_start=True, linger=True), record
    )
    tips, conns = BlockTip(), NumConnections()

    async def go() -> dict[str, Any]:
        c = await Conn.open(node.socket)
        n = c.init.makeNode(c.ctx).result
        before = (await n.getNodeCount(c.ctx, 3)).result
        _handlers = [
            (await n.handleNotifyBlockTip(c.ctx, tips)).result,
            (await n.handleNotifyNumConnectionsChanged(c.ctx, conns)).result,
        ]
        node.go()
        while len(tips.got) < 3 or len(conns.got) < 6:
            await asyncio.sleep(0.01)
        stats = await n.getNodesStats(c.ctx)
        return {
            "before": before,
            "count": (await n.getNodeCount(c.ctx, 3)).result,
            "stats": [
                (s.nodeid, s.addrName, s.cleanSubVer, s.connType, s.inbound) for s in stats.stats
            ],
            "header": (await n.getHeaderTip(c.ctx)).height,
            "mempool": (await n.getMempoolSize(c.ctx)).result,
            "active": (await n.getNetworkActive(c.ctx)).result,
            "recv": (await n.getTotalBytesRecv(c.ctx)).result,
            "max": (await n.getMempoolMaxUsage(c.ctx)).result,
        }

    out = run(go)
    report = node.stop()
    assert out["before"] == 8
    assert conns.got == [9, 8, 9, 8, 9, 8]
    assert [h for _, h, _, _ in tips.got] == [101, 102, 103], "the node stream drives the chain"
    assert out["count"] == len(out["stats"]) == 8
    assert out["header"] == 103
    assert out["active"] is True
    assert out["max"] == 300_000_000
    rec = events(record, "node_notifications")
    assert [r["method"] for r in rec].count("handleNotifyBlockTip") == 3
    st = report.streams["node_notifications"]
    assert st.generated == 27
    assert st.sent == len(tips.got) + len(conns.got) == 9
    check_invariant(report)


def test_handler_destroy_disconnect_and_release_stop_calls(node: IpcNode) -> None:
    node.start(IpcScenario(streams=("utxo",), count=0, rate=400, duration=3, wait_start=True))
    a, b, c = Utxo(), Utxo(), Utxo()

    async def go() -> tuple[int, int, int]:
        conn = await Conn.open(node.socket)
        tracing = conn.init.makeUtxoTracing(conn.ctx).result
        ha = (await tracing.traceUtxoCache(conn.ctx, a)).result
        hb = (await tracing.traceUtxoCache(conn.ctx, b)).result
        hc = (await tracing.traceUtxoCache(conn.ctx, c)).result
        node.go()
        while len(a.got) < 20:
            await asyncio.sleep(0.005)
        await ha.destroy(conn.ctx)
        at_destroy = len(a.got)
        await hc.disconnect(conn.ctx)
        at_disconnect = len(c.got)
        del hb  # the last reference to the Handler: the node unsubscribes too
        await asyncio.sleep(0.5)
        return at_destroy, len(b.got), at_disconnect

    at_destroy, b_seen, at_disconnect = run(go)
    report = node.stop()
    sa, sb, sc = (report.subscription(i) for i in (1, 2, 3))
    assert sa.ended == "destroy"
    assert len(a.got) == at_destroy == sa.sent
    assert sb.ended == "released"
    assert len(b.got) == sb.sent == b_seen
    assert sc.ended == "disconnect"
    assert len(c.got) == at_disconnect == sc.sent
    assert a.destroyed == b.destroyed == c.destroyed == 1, "node destroys callbacks it drops"
    assert report.streams["utxo"].unsubscribes == 3
    check_invariant(report)


def test_random_values_are_seeded(tmp_path: Path) -> None:
    """--values random: plausible traffic, the same for the same seed."""
    records = []
    for run_no in range(2):
        record = tmp_path / f"rec{run_no}.jsonl"
        scenario = IpcScenario(streams=("chain", "net"), count=40, values="random", seed=7)
        with IpcNode() as node:
            node.start(IpcScenario(**{**_fields(scenario), "wait_start": True}), record)
            chain, net = Chain(), Net()

            async def go(node: IpcNode = node, chain: Any = chain, net: Any = net) -> None:
                c = await Conn.open(node.socket)
                opts = S.require("tracing_net").NetMessageTraceOptions(maxPayloadBytes=1 << 20)
                _handlers = [
                    (await c.init.makeChain(c.ctx).result.handleNotifications(c.ctx, chain)).result,
                    (
                        await c.init.makeNetTracing(c.ctx).result.traceNetMessages(c.ctx, opts, net)
                    ).result,
                ]
                node.go()
                while len(chain.got) < 40 or net.received < 40:
                    await asyncio.sleep(0.01)
                # Stay connected until the node is done: a client that hangs up before
                # its last reply reaches the node makes that call fail on the node's side.
                deadline = time.monotonic() + 30
                while node.running and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)

            run(go)
            node.wait(30)
        for _, got in chain.got:
            if "tx" in got:
                parse_one_tx(got["tx"])
        assert {m["msgType"] for m in net.messages} <= set(REAL_MSG_TYPES)
        # Values per stream are seeded; interleaving and batch cuts follow timing.
        timing = {"timestampUs", "batch"}
        lines = [r for r in read_ipc_records(record) if r["kind"] == "event"]
        lines.sort(key=lambda r: (r["stream"], r["seq"]))
        records.append([{k: v for k, v in r.items() if k not in timing} for r in lines])
    assert records[0] == records[1]


def _fields(scenario: IpcScenario) -> dict[str, Any]:
    return {f: getattr(scenario, f) for f in scenario.__slots__}


def test_wait_start_holds_events_until_go(node: IpcNode) -> None:
    node.start(IpcScenario(streams=("utxo",), count=5, wait_start=True))
    cb = Utxo()

    async def go() -> tuple[int, int]:
        c = await Conn.open(node.socket)
        tracing = c.init.makeUtxoTracing(c.ctx).result
        _handler = (await tracing.traceUtxoCache(c.ctx, cb)).result
        await asyncio.sleep(0.5)
        before = len(cb.got)
        node.go()
        while len(cb.got) < 5:
            await asyncio.sleep(0.01)
        return before, len(cb.got)

    assert run(go) == (0, 5)
    assert node.wait(10).streams["utxo"].sent == 5


def test_context_callbacks_need_a_client_thread_map(node: IpcNode) -> None:
    node.start(IpcScenario(streams=("chain",), count=3, wait_start=True))

    async def go() -> None:
        c = await Conn.open(node.socket, thread_map=False)
        chain = c.init.makeChain(c.ctx).result
        _handler = (await chain.handleNotifications(c.ctx, Chain())).result
        node.go()
        await asyncio.sleep(0.5)

    run(go)
    sub = node.wait(10).subscriptions[0]
    assert (sub.ended, sub.sent, sub.failed) == ("failed", 0, 1)


def test_malformed_values(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(
        IpcScenario(streams=("utxo", "net"), count=6, malformed_after=3, wait_start=True), record
    )
    utxo, net = Utxo(), Net(read=False)
    types: list[Any] = []

    class Strict(Net):
        async def messages_context(self, call: Any) -> None:
            for m in call.params.messages:
                types.append(_text(m, "msgType"))
            await super().messages_context(call)

    strict = Strict(read=False)

    async def go() -> None:
        c = await Conn.open(node.socket)
        _handlers = [
            (await c.init.makeUtxoTracing(c.ctx).result.traceUtxoCache(c.ctx, utxo)).result,
            (
                await c.init.makeNetTracing(c.ctx).result.traceNetMessages(
                    c.ctx, S.require("tracing_net").NetMessageTraceOptions(), strict
                )
            ).result,
        ]
        node.go()
        while len(utxo.got) < 7 or strict.received < 7:
            await asyncio.sleep(0.01)

    run(go)
    report = node.wait(10)
    assert [len(bytes.fromhex(i["outpointHash"])) for _, i in utxo.got].count(31) == 1
    assert len(utxo.got[3][1]["outpointHash"]) == 62, "after 3 events"
    assert types.count(None) == 1, "exactly one msgType pycapnp cannot decode"
    bad = [r for r in read_ipc_records(record) if r.get("malformed")]
    assert {r["stream"] for r in bad} == {"utxo", "net"}
    assert next(r for r in bad if r["stream"] == "net")["msgType"] == {
        "hex": b"bad\xff\xfename".hex()
    }
    assert report.streams["utxo"].malformed == report.streams["net"].malformed == 1
    assert net.received == 0


def test_garbage_after_closes_the_connection(node: IpcNode, tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    node.start(
        IpcScenario(streams=("utxo",), count=50, rate=200, garbage_after=10, wait_start=True),
        record,
    )
    cb = Utxo()

    async def go() -> str:
        c = await Conn.open(node.socket)
        tracing = c.init.makeUtxoTracing(c.ctx).result
        _handler = (await tracing.traceUtxoCache(c.ctx, cb)).result
        node.go()
        await asyncio.sleep(0.5)
        with pytest.raises(capnp.KjException) as err:
            await c.init.makeEcho(c.ctx)
        return str(err.value.type)

    kind = run(go)
    report = node.wait(15)
    assert kind == "DISCONNECTED"
    assert report.garbage_connections == 1
    assert len(cb.got) == 10
    sub = report.subscriptions[0]
    assert sub.ended == "connection_closed"
    assert sub.sent == 10
    assert any(r["kind"] == "garbage" for r in read_ipc_records(record))


def test_sigterm_reports_and_no_process_is_left(tmp_path: Path) -> None:
    node = IpcNode()
    node.start(IpcScenario(streams=("utxo",), count=0, rate=100))
    pid = node.pid
    assert node.running
    report = node.stop()
    assert report.interrupted
    assert report.streams["utxo"].generated > 0
    node.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # close() kills a node that ignores nothing but never ends on its own.
    other = IpcNode()
    other.start(IpcScenario(linger=True))
    pid = other.pid
    other.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(IpcNodeError):
        IpcNode().go()
    assert signal.SIGUSR1  # documented control signal


def test_scenario_argv_round_trips() -> None:
    from bridge.emulator.ipc_scenario import build_parser, scenario_from_args

    scenario = IpcScenario(
        streams=("utxo", "net"),
        count=7,
        counts=(("net", 100),),
        rate=2.5,
        rates=(("utxo", 0.0),),
        duration=3,
        ping=True,
        stages=(PingStage(1000, 0.5), PingStage(0, 1)),
        ping_size=64,
        values="random",
        seed=9,
        wait_start=True,
        block_interval=0,
        malformed_after=4,
        garbage_after=50,
        linger=True,
    )
    ns = build_parser().parse_args(["--socket", "/tmp/x.sock", *scenario.argv()])
    assert scenario_from_args(ns) == scenario
    assert scenario.count_for("net") == 100
    assert scenario.rate_for("utxo") == 0.0
    with pytest.raises(ValueError, match="proposed"):
        IpcScenario(version="v30", streams=("utxo",))
    with pytest.raises(ValueError, match="net"):
        IpcScenario(streams=("utxo",), ping=True)
