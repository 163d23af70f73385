"""The IPC source against a real bitcoin-node (master d84fc352): the judge of the emulator.

A real node offers only the merged interfaces (Init, Echo, Mining, Rpc), so what the
bridge can follow over IPC is the tip, through ``Mining.waitTipChanged``. These tests run
the real bridge (``Bridge`` over ``make_source``'s ``IpcSource``, as ``tracebridge run
--source ipc`` builds it) against a regtest ``bitcoin-node -ipcbind=unix`` and a real
broker, and check every record against the node's own RPC answers. A node stop must end
the session cleanly (the node says it is shutting down by answering ``waitTipChanged``
with no tip), and a restart on the same datadir must give a new session.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

capnp = pytest.importorskip("capnp")

from bridge.config import BridgeSettings, load_settings  # noqa: E402
from bridge.consume import ConsumedRecord  # noqa: E402
from bridge.realnode.node import RegtestNode  # noqa: E402
from bridge.sources.ipc.connection import open_connection  # noqa: E402
from bridge.sources.ipc.schemas import (  # noqa: E402
    SchemaSet,
    import_path,
    interface_id,
    load_schema_set,
    method_ordinals,
)
from tests.ipc.ipc_harness import (  # noqa: E402
    TIP_STREAM,
    IpcBridge,
    by_session_and_stream,
    dead_letters,
    running_ipc_bridge,
)
from tests.ipc.mining_answers import check_shutdown_answers, mining_answers_at_shutdown  # noqa: E402
from tests.realnode.conftest import NodeFactory  # noqa: E402
from tests.support.pipeline import final_books, read_topics, verdicts  # noqa: E402

pytestmark = [pytest.mark.realnode, pytest.mark.ipc]

NODE_ID = "regtest-bitcoin-node"
# The secp256k1 generator as a compressed public key: a fixed address to mine to,
# without a wallet.
GENERATOR = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
# Interfaces the bridge asks for (ipc.subscribe) that master does not offer.
NOT_ON_MASTER = ["chain", "net", "node", "utxo"]


def real_settings(bootstrap: str, prefix: str, socket: Path) -> BridgeSettings:
    """A bridge following ``socket`` with the default subscriptions, reconnecting fast."""
    return load_settings(
        None,
        {
            "node_id": NODE_ID,
            "source": "ipc",
            "ipc": {"socket": str(socket), "reconnect_max_backoff_s": 0.5},
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "linger_ms": 5},
            "heartbeat_interval_s": 0.5,
        },
    )


def mining_address(node: RegtestNode) -> str:
    """A P2WPKH address for the generator key, worked out by the node itself."""
    descriptor = f"wpkh({GENERATOR})"
    checksum = node.call("getdescriptorinfo", descriptor)["checksum"]
    address: str = node.call("deriveaddresses", f"{descriptor}#{checksum}")[0]
    return address


def captured(bridge: IpcBridge, session: str) -> int:
    book = bridge.books(session).get(TIP_STREAM)
    return 0 if book is None else book.captured


def mine_one_at_a_time(bridge: IpcBridge, session: str, node: RegtestNode, n: int) -> None:
    """Mine ``n`` blocks, each only once the bridge has the previous tip: every one of
    them must then be a record of its own."""
    address = mining_address(node)
    for _ in range(n):
        before = captured(bridge, session)
        node.call("generatetoaddress", 1, address)
        bridge.wait_captured(session, [TIP_STREAM], before + 1)


def wait_settled(bridge: IpcBridge, session: str, quiet_s: float = 2.0) -> None:
    """Until the tip stream has captured nothing new for ``quiet_s`` (longer than the
    bridge's waitTipChanged timeout): the bridge has seen the node's last tip."""
    deadline = time.monotonic() + 60
    last, since = captured(bridge, session), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the tip stream never settled"
        time.sleep(0.1)
        now = captured(bridge, session)
        if now != last:
            last, since = now, time.monotonic()


def tip_records(records: list[ConsumedRecord], session: str) -> list[dict[str, Any]]:
    values = [r.value for r in by_session_and_stream(records).get((session, TIP_STREAM), [])]
    return [v for v in values if v is not None]


def check_tips(tips: list[dict[str, Any]], node: RegtestNode, session: str) -> list[int]:
    """Every record is a block of the node's chain at its height, in order, once."""
    heights = []
    for seq, value in enumerate(tips, start=1):
        envelope = value["envelope"]
        assert (envelope["node_id"], envelope["session_id"]) == (NODE_ID, session)
        assert (envelope["source"], envelope["stream"]) == ("IPC", TIP_STREAM)
        assert (envelope["seq"], envelope["lost_before"]) == (seq, 0)
        assert envelope["lost"] == {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
        display = node.call("getblockhash", value["height"])
        assert value["block_hash_hex"] == display
        assert value["block_hash"] == bytes.fromhex(display)[::-1], "internal byte order"
        heights.append(value["height"])
    assert heights == sorted(set(heights)), "each tip once, in order"
    return heights


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run a coroutine inside pycapnp's KJ loop, as every pycapnp client must."""

    async def main() -> Any:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(capnp.run(main()))


def test_waittipchanged_answers_at_shutdown(regtest_node: NodeFactory) -> None:
    """The facts the bridge (and the emulated node) rely on, asked of the real node: a
    short currentTip fails; a shutdown answers a pending wait with no tip at once."""
    node = regtest_node("answers", ipc=True)
    schemas = load_schema_set("master")
    answers = run(lambda: mining_answers_at_shutdown(node.ipc_socket, schemas, node.stop))
    check_shutdown_answers(answers)
    log = node.debug_log.read_text(errors="replace")
    assert log.count("SpanReader::read(): end of data") == 2, "the node's own verdict"


@pytest.mark.kafka
@pytest.mark.slow
def test_master_node_tip_stop_and_restart(
    regtest_node: NodeFactory,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tip following, a node stop and a restart on the same datadir, end to end.

    Before the fix, the stop was taken for a new tip: an empty hash became a dead
    letter and a bridge-stage loss, the next ``waitTipChanged`` sent an empty
    ``currentTip`` (the node logged an uncaught ``SpanReader`` exception), and the
    bridge opened a 0-event session against the dying node."""
    caplog.set_level(logging.INFO, logger="bridge")
    node = regtest_node("ipc", ipc=True)
    settings = real_settings(kafka_bootstrap, topic_prefix, node.ipc_socket)
    assert settings.ipc.version == "auto"
    with running_ipc_bridge(settings, tmp_path) as bridge:
        attached = bridge.wait_for("attached")
        one = attached["session_id"]
        assert attached["streams"] == [TIP_STREAM], "a master node offers only the tip"
        assert attached["node_endpoint"] == str(node.ipc_socket)
        bridge.wait_captured(one, [TIP_STREAM], 1)  # genesis, the tip at subscription
        mine_one_at_a_time(bridge, one, node, 3)
        node.call("generatetoaddress", 5, mining_address(node))  # the bridge may skip some
        wait_settled(bridge, one)

        node.stop()
        ended = bridge.wait_for("session_ended", session=one)
        # The bridge keeps trying to reconnect (every 0.5 s at most): the dying node
        # must not have given it a session.
        time.sleep(3.0)
        with bridge.recorder.lock:
            history = list(bridge.recorder.history)
        assert [u["session_id"] for u in history if u["state"] == "attached"] == [one]

        node.start()
        two = bridge.wait_for("attached", session_not=one)["session_id"]
        bridge.wait_captured(two, [TIP_STREAM], 1)  # the tip the node restarted with
        mine_one_at_a_time(bridge, two, node, 2)
    assert not node.log_contains("uncaught exception"), "no call the node could not read"

    books_one = {book["stream"]: book for book in ended["books"]}
    assert books_one[TIP_STREAM]["lost"] == {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
    assert books_one[TIP_STREAM]["dead_lettered"] == 0

    records = read_topics(kafka_bootstrap, topic_prefix)
    assert not [r.error for r in records if r.value is None]
    assert dead_letters(records) == []
    checked = verdicts(records)  # tracebridge audit (require_closed) passes, books balance
    assert {c.key[1] for c in checked} == {one, two}
    assert all(c.ok for c in checked), checked
    books = final_books(records)
    for session in (one, two):
        book = books[(session, TIP_STREAM)]
        assert book["lost"] == {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
        assert book["fired"] == book["acked"] == len(tip_records(records, session))
        assert book["dead_lettered"] == 0

    heights_one = check_tips(tip_records(records, one), node, one)
    assert heights_one[:4] == [0, 1, 2, 3], "genesis, then each block mined one at a time"
    assert heights_one[-1] == 8, "the last of the five mined at once"
    first = tip_records(records, one)[0]
    assert first["initial_block_download"] is True, "a fresh regtest chain is in IBD"
    assert all(v["initial_block_download"] is False for v in tip_records(records, one)[1:])
    assert check_tips(tip_records(records, two), node, two) == [8, 9, 10]

    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    spoken = [m for _, m in messages if "it speaks" in m]
    assert len(spoken) == 2, spoken
    assert all("it speaks master; offers ['tip']" in m for m in spoken), spoken
    skipped = sorted(m for _, m in messages if "does not offer" in m)
    assert skipped == [
        f"The node (master) does not offer {name!r} over IPC; skipping it."
        for name in NOT_ON_MASTER
    ], "each interface master lacks is reported once, not once per session"
    shutting = [m for _, m in messages if "is shutting down" in m]
    assert len(shutting) == 1, shutting
    assert "Mining.waitTipChanged returned no tip" in shutting[0]
    assert not [m for level, m in messages if level >= logging.WARNING and m not in skipped]


# ------------------------------------------------------------------------------------
# schemas/master against the real node: ordinals, IDs, defaults, by what the node does.
# ------------------------------------------------------------------------------------

# Regtest's proof-of-work limit (nBits 0x207fffff): a header hash at or below it is valid.
REGTEST_POW_LIMIT = 0x7FFFFF << 232
# The methods of each merged interface at master d84fc352 (the reference, section 3.2),
# every one of them called below (parameters by name, as the wire knows them).
MASTER_METHODS = {
    ("init", "Init"): {"construct", "makeEcho", "makeMiningOld2", "makeMining", "makeRpc"},
    ("echo", "Echo"): {"destroy", "echo"},
    ("rpc", "Rpc"): {"executeRpc"},
    ("mining", "Mining"): {
        "isTestChain",
        "isInitialBlockDownload",
        "getTip",
        "waitTipChanged",
        "createNewBlock",
        "checkBlock",
        "interrupt",
        "submitBlock",
    },
    ("mining", "BlockTemplate"): {
        "destroy",
        "getBlockHeader",
        "getBlock",
        "getTxFees",
        "getTxSigops",
        "getCoinbaseTx",
        "getCoinbaseMerklePath",
        "submitSolution",
        "waitNext",
        "interruptWait",
    },
}


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class Cursor:
    """Reads a serialized block: just the framing, written here from BIP141, so the
    node's bytes are checked by an independent reader."""

    def __init__(self, data: bytes, at: int = 0) -> None:
        self.data, self.at = data, at

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        assert len(chunk) == n, "truncated"
        self.at += n
        return chunk

    def compact(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        return int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")

    def pushes(self) -> bytes:
        return self.take(self.compact())


@dataclass
class Tx:
    raw: bytes
    txid: bytes  # internal byte order
    version: int
    sequences: list[int]
    script_sigs: list[bytes]
    outputs: list[bytes]  # each serialized: value (8 bytes) + script
    witness: list[list[bytes]]
    lock_time: int


def read_tx(cursor: Cursor) -> Tx:
    start = cursor.at
    version = int.from_bytes(cursor.take(4), "little")
    segwit = cursor.data[cursor.at : cursor.at + 2] == b"\x00\x01"
    if segwit:
        cursor.take(2)
    body_start = cursor.at
    script_sigs, sequences = [], []
    for _ in range(cursor.compact()):
        cursor.take(36)
        script_sigs.append(cursor.pushes())
        sequences.append(int.from_bytes(cursor.take(4), "little"))
    outputs = []
    for _ in range(cursor.compact()):
        at = cursor.at
        cursor.take(8)
        cursor.pushes()
        outputs.append(cursor.data[at : cursor.at])
    body = cursor.data[body_start : cursor.at]
    witness = []
    if segwit:
        witness = [[cursor.pushes() for _ in range(cursor.compact())] for _ in script_sigs]
    tail = cursor.take(4)
    stripped = version.to_bytes(4, "little") + body + tail
    return Tx(
        raw=cursor.data[start : cursor.at],
        txid=sha256d(stripped),
        version=version,
        sequences=sequences,
        script_sigs=script_sigs,
        outputs=outputs,
        witness=witness,
        lock_time=int.from_bytes(tail, "little"),
    )


def read_block(block: bytes) -> tuple[bytes, list[Tx]]:
    cursor = Cursor(block, 80)
    txs = [read_tx(cursor) for _ in range(cursor.compact())]
    assert cursor.at == len(block), "trailing bytes"
    return block[:80], txs


def merkle_root(txids: list[bytes]) -> bytes:
    level = list(txids)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[k] + level[k + 1]) for k in range(0, len(level), 2)]
    return level[0]


def with_nonce(header: bytes, valid_pow: bool) -> bytes:
    """``header`` with the first nonce whose hash meets (or misses) regtest's target."""
    for nonce in range(1 << 16):
        candidate = header[:76] + nonce.to_bytes(4, "little")
        if (int.from_bytes(sha256d(candidate), "little") <= REGTEST_POW_LIMIT) == valid_pow:
            return candidate
    raise AssertionError("no such nonce in 65536 tries")


def beyond_schema(schemas: SchemaSet, directory: Path) -> Any:
    """A schema declaring, for each merged interface (same type ID as ours), one method
    past master's last ordinal: the node must answer it UNIMPLEMENTED. A separate
    parser, because its interfaces reuse the IDs of the set's."""
    lines = ["@0xd1e2f3a4b5c6d7e8;"]
    for (module, name), names in MASTER_METHODS.items():
        type_id = interface_id(getattr(schemas.require(module), name))
        count = len(names)
        methods = " ".join(f"m{k} @{k} () -> ();" for k in range(count))
        lines.append(f"interface {name} @{type_id:#x} {{ {methods} beyond @{count} () -> (); }}")
    path = directory / "beyond_master.capnp"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return capnp.SchemaParser().load(str(path), imports=import_path("master"))


async def expect_unimplemented(promise: Any, type_id: int, method_id: int) -> None:
    with pytest.raises(capnp.KjException) as error:
        await promise
    assert str(error.value.type) == "UNIMPLEMENTED", error.value
    message = str(error.value)
    assert f"typeId = {type_id};" in message, "the node names our interface ID"
    assert f"methodId = {method_id}" in message


async def _awaited(promise: Any) -> Any:
    return await promise


async def wait_next(template: Any, ctx: Any, options: Any) -> tuple[float, bool]:
    """(seconds waitNext took, whether it returned a template rather than null)."""
    started = time.monotonic()
    answer = (await template.waitNext(ctx, options)).result
    took = time.monotonic() - started
    try:
        await answer.getBlockHeader(ctx)
    except capnp.KjException as error:
        if "null capability" not in str(error):
            raise
        return took, False
    return took, True


async def check_master_against_node(node: RegtestNode, address: str, probe_dir: Path) -> None:
    s = load_schema_set("master")
    conn = await open_connection(node.ipc_socket, s)
    ctx, init = conn.context, conn.init
    m = s.mining

    # -- Ordinals: every method answers; the one past the last is not there. The
    # node's error names the interface ID, so the IDs (file ID + name) match too.
    for (module, name), names in MASTER_METHODS.items():
        ordinals = method_ordinals(getattr(s.require(module), name))
        assert set(ordinals) == names, f"{name}: each declared method is exercised here"
    beyond = beyond_schema(s, probe_dir)
    mining = (await init.makeMining(ctx)).result
    echo = (await init.makeEcho(ctx)).result
    rpc = (await init.makeRpc(ctx)).result
    template = (await mining.createNewBlock(ctx, m.BlockCreateOptions.new_message(), False)).result
    for (module, name), names in MASTER_METHODS.items():
        cap = {"Init": init, "Echo": echo, "Rpc": rpc, "Mining": mining}.get(name, template)
        type_id = interface_id(getattr(s.require(module), name))
        promise = cap.cast_as(getattr(beyond, name)).beyond()
        await expect_unimplemented(promise, type_id, len(names))
    # proposed/ puts its factories at Init @5..@8: free slots on a master node.
    proposed = load_schema_set("proposed")
    pconn = await open_connection(node.ipc_socket, proposed)
    for ordinal, factory in enumerate(("makeNetTracing", "makeUtxoTracing", "makeChain"), 5):
        promise = getattr(pconn.init, factory)(pconn.context)
        await expect_unimplemented(promise, interface_id(s.init.Init), ordinal)
    await expect_unimplemented(pconn.init.makeNode(pconn.context), interface_id(s.init.Init), 8)
    with pytest.raises(capnp.KjException, match=r"Old mining interface \(@2\) not supported"):
        await init.makeMiningOld2()

    # -- Echo, Rpc (request, uri, user in that order), Mining's inspectors, BlockRef.
    assert (await echo.echo(context=ctx, echo="tracebridge")).result == "tracebridge"
    request = json.dumps({"method": "getblockcount", "params": [], "id": 1})
    reply = json.loads(
        (await rpc.executeRpc(context=ctx, request=request, uri="/", user="")).result
    )
    assert reply["result"] == node.call("getblockcount")
    assert (await mining.isTestChain(ctx)).result is True
    ibd = node.call("getblockchaininfo")["initialblockdownload"]
    assert (await mining.isInitialBlockDownload(ctx)).result is ibd
    tip = await mining.getTip(ctx)
    assert tip.hasResult
    assert (bytes(tip.result.hash)[::-1].hex(), tip.result.height) == (
        node.call("getbestblockhash"),
        node.call("getblockcount"),
    )
    current = bytes(tip.result.hash)
    # waitTipChanged(timeout = .maxDouble): 0 ms must come back at once, 700 ms after
    # 0.7 s (with another default the node would read other bits and wait forever).
    for timeout_ms, low, high in ((0.0, 0.0, 0.3), (700.0, 0.65, 2.0)):
        started = time.monotonic()
        call = mining.waitTipChanged(context=ctx, currentTip=current, timeout=timeout_ms)
        same = (await asyncio.wait_for(_awaited(call), 10)).result
        assert low <= time.monotonic() - started < high, timeout_ms
        assert bytes(same.hash) == current

    # -- BlockTemplate against getblocktemplate and the block's own coinbase.
    (mempool_txid,) = node.call("getrawmempool")
    gbt = node.call("getblocktemplate", {"rules": ["segwit"]})
    assert list((await template.getTxFees(ctx)).result) == [t["fee"] for t in gbt["transactions"]]
    assert list((await template.getTxSigops(ctx)).result) == [
        t["sigops"] for t in gbt["transactions"]
    ]
    block = bytes((await template.getBlock(ctx)).result)
    assert bytes((await template.getBlockHeader(ctx)).result) == block[:80]
    header, txs = read_block(block)
    coinbase, spend = txs
    assert spend.txid[::-1].hex() == mempool_txid
    path = [bytes(h) for h in (await template.getCoinbaseMerklePath(ctx)).result]
    assert path == [spend.txid]
    cb = (await template.getCoinbaseTx(ctx)).result  # every CoinbaseTx field, by value
    assert (cb.version, cb.sequence, cb.lockTime) == (
        coinbase.version,
        coinbase.sequences[0],
        coinbase.lock_time,
    )
    assert bytes(cb.scriptSigPrefix) == coinbase.script_sigs[0][: len(cb.scriptSigPrefix)]
    assert [bytes(cb.witness)] == coinbase.witness[0]
    reward = int.from_bytes(coinbase.outputs[0][:8], "little")
    assert cb.blockRewardRemaining == reward == gbt["coinbasevalue"]
    assert [bytes(o) for o in cb.requiredOutputs] == coinbase.outputs[1:]

    # -- checkBlock's BlockCheckOptions defaults (checkMerkleRoot, checkPow = true): an
    # option set explicitly to false must be read as false, an unset one as true.
    root = merkle_root([tx.txid for tx in txs])
    assert header[36:68] == bytes(32), "the template leaves the merkle root to the client"
    rooted = header[:36] + root + header[68:]
    unsolved = with_nonce(rooted, valid_pow=False) + block[80:]
    solved = with_nonce(rooted, valid_pow=True) + block[80:]
    no_root = with_nonce(header, valid_pow=False) + block[80:]
    cases = [
        (solved, {}, True, ""),
        (unsolved, {}, False, "high-hash"),
        (unsolved, {"checkPow": False}, True, ""),
        (no_root, {"checkPow": False}, False, "bad-txnmrklroot"),
        (no_root, {"checkPow": False, "checkMerkleRoot": False}, True, ""),
    ]
    for candidate, options, ok, reason in cases:
        check = m.BlockCheckOptions.new_message(**options)
        checked = await mining.checkBlock(context=ctx, block=candidate, options=check)
        assert (checked.result, checked.reason) == (ok, reason), options

    # -- BlockCreateOptions defaults: values the node reads one way with the same
    # default as ours, and another way (or not at all) with none.
    create: list[tuple[dict[str, object], int | str]] = [
        ({"useMempool": False}, 0),
        ({"blockReservedWeight": 3_999_000}, 1),  # 1 tx of ~560 WU still fits
        ({"blockReservedWeight": 3_999_600}, 0),
        ({"coinbaseOutputMaxAdditionalSigops": 79_990}, 1),
        ({"blockReservedWeight": 1000}, "lower than minimum safety value"),
        ({"coinbaseOutputMaxAdditionalSigops": 80_256}, "exceeds consensus maximum"),
    ]
    for create_options, expected in create:
        promise = mining.createNewBlock(
            ctx, m.BlockCreateOptions.new_message(**create_options), False
        )
        if isinstance(expected, str):
            with pytest.raises(capnp.KjException, match=expected):
                await promise
            continue
        created = (await promise).result
        assert len((await created.getTxFees(ctx)).result) == expected, create_options

    # -- BlockWaitOptions defaults (timeout = .maxDouble, feeThreshold = .maxMoney),
    # and interruptWait @9.
    wait = m.BlockWaitOptions.new_message
    took, got = await wait_next(template, ctx, wait(timeout=500.0))
    assert (got, 0.45 <= took < 2.0) == (False, True), took
    waiting = asyncio.ensure_future(wait_next(template, ctx, wait(timeout=30_000.0)))
    await asyncio.sleep(0.3)
    await template.interruptWait()
    took, got = await asyncio.wait_for(waiting, 10)
    assert (got, took < 5.0) == (False, True), took
    send = functools.partial(node.call, "sendtoaddress", address, 1.0, wallet="w")
    fee_cases: list[tuple[dict[str, int], bool]] = [({"feeThreshold": 1}, True), ({}, False)]
    for fee_options, returns_early in fee_cases:
        waiting = asyncio.ensure_future(
            wait_next(template, ctx, wait(timeout=3000.0, **fee_options))
        )
        await asyncio.sleep(0.3)
        await asyncio.to_thread(send)  # fees rise
        took, got = await asyncio.wait_for(waiting, 10)
        assert (got, took < 2.5) == (returns_early, returns_early), (fee_options, took)

    # -- Mining.interrupt @6 (no context): later templates of that Mining are null.
    interrupted = (await init.makeMining(ctx)).result
    await interrupted.interrupt()
    after = (
        await interrupted.createNewBlock(ctx, m.BlockCreateOptions.new_message(), False)
    ).result
    with pytest.raises(capnp.KjException, match="null capability"):
        await after.getBlockHeader(ctx)

    # -- submitBlock @7 and BlockTemplate.submitSolution @7: each block becomes the tip.
    submitted = await mining.submitBlock(context=ctx, block=solved)
    assert (submitted.result, submitted.reason) == (True, "")
    assert node.call("getbestblockhash") == sha256d(solved[:80])[::-1].hex()
    fresh = (await mining.createNewBlock(ctx, m.BlockCreateOptions.new_message(), False)).result
    header, txs = read_block(bytes((await fresh.getBlock(ctx)).result))
    rooted = header[:36] + merkle_root([tx.txid for tx in txs]) + header[68:]
    solution = with_nonce(rooted, valid_pow=True)
    version, timestamp, nonce = (int.from_bytes(solution[k : k + 4], "little") for k in (0, 68, 76))
    accepted = await fresh.submitSolution(
        context=ctx, version=version, timestamp=timestamp, nonce=nonce, coinbase=txs[0].raw
    )
    assert accepted.result is True
    assert node.call("getbestblockhash") == sha256d(solution)[::-1].hex()
    await fresh.destroy(ctx)
    await template.destroy(ctx)
    await echo.destroy(ctx)


def test_master_schemas_match_the_real_node(regtest_node: NodeFactory, tmp_path: Path) -> None:
    """schemas/master is what the real node speaks: ordinals and interface IDs (a
    method past each interface's last is UNIMPLEMENTED, and the node names our type
    ID), parameter layouts (values come back as the RPC says), and every default that
    changes what the node does (Cap'n Proto XORs a field with its default, so a
    mismatch makes the node read another value)."""
    node = regtest_node("schemas", ipc=True)
    node.call("createwallet", "w")
    address = node.call("getnewaddress", wallet="w")
    node.call("generatetoaddress", 101, address)
    node.call("sendtoaddress", address, 1.0, wallet="w")
    run(lambda: check_master_against_node(node, address, tmp_path), timeout=180)
