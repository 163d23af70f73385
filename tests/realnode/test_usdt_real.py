"""Real Bitcoin Core → real BPF → bridge → real Kafka, judged by the node's own RPC.

The emulated node proves the bridge reads exactly what a probe passes; only a real
``bitcoind`` proves that what a probe passes is what the catalogue says it is (argument
order, types, units, enums), and that real traffic (a wallet, P2P relay over v1 and
BIP324 v2, RBF, mining, shutdown) reaches Kafka without loss. One run of
``usdt_scenario`` drives two regtest nodes with the bridge on node A; every test below
checks one family of records against what A said over RPC while it ran.
"""

from __future__ import annotations

import os
import struct
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.events.catalog import EVENTS
from bridge.realnode.binaries import CoreBinaries
from tests.conftest import CLEANED_ENV_PREFIX, KEEP_ENV
from tests.realnode import usdt_scenario
from tests.realnode.usdt_scenario import (
    MEMPOOL_HEIGHT,
    NODE_ID,
    PAYLOAD_CAP,
    WALLET,
    RealRun,
    Truth,
    Window,
    sats,
    sha256d,
)
from tests.support.pipeline import events_by_stream, final_books, verdicts

pytestmark = [pytest.mark.realnode, pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

Event = dict[str, Any]

# getpeerinfo "network" -> the catalogue's Network enum (GetNetworkName in netbase.cpp).
NETWORK_SYMBOL = {
    "not_publicly_routable": "UNROUTABLE",
    "ipv4": "IPV4",
    "ipv6": "IPV6",
    "onion": "ONION",
    "i2p": "I2P",
    "cjdns": "CJDNS",
}
# BIP324 short message type ids (V2_MESSAGE_IDS in src/net.cpp): these take one byte in
# a v2 packet; any other type is 1 + 12 bytes.
V2_SHORT_IDS = frozenset(
    {
        *("addr", "block", "blocktxn", "cmpctblock", "feefilter", "filteradd", "filterclear"),
        *("filterload", "getblocks", "getblocktxn", "getdata", "getheaders", "headers", "inv"),
        *("mempool", "merkleblock", "notfound", "ping", "pong", "sendcmpct", "tx"),
        *("getcfilters", "cfilter", "getcfheaders", "cfheaders", "getcfcheckpt", "cfcheckpt"),
        "addrv2",
    }
)
# Streams the scenario gives the node no reason to fire: no inbound slot runs out, so
# no peer is evicted, and no coin is uncached (every coin A ever read is still in its
# cache, because the run's only flushes before the stop are syncs, which keep it).
QUIET_STREAMS = frozenset({"net:evicted_inbound_connection", "utxocache:uncache"})


def header_overhead(msg_type: str, transport: str) -> int:
    """Bytes getpeerinfo's *_per_msg counts on top of the payload: the 24-byte v1
    header, or a v2 packet's 3-byte length, header byte, type and 16-byte tag."""
    if transport == "v1":
        return 24
    assert transport == "v2", transport
    return 3 + 1 + (1 if msg_type in V2_SHORT_IDS else 13) + 16


@pytest.fixture(scope="module")
def real_run(
    core_binaries: CoreBinaries, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealRun]:
    """The one traced run every test here judges (module-scoped: it takes ~20 s)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(CLEANED_ENV_PREFIX) and name not in KEEP_ENV:
                patch.delenv(name)
        tmp_path: Path = tmp_path_factory.mktemp("usdt-real")
        yield usdt_scenario.run(core_binaries, kafka_bootstrap, tmp_path)


@pytest.fixture(scope="module")
def events(real_run: RealRun) -> dict[str, list[Event]]:
    return events_by_stream(real_run.records)


@pytest.fixture(scope="module")
def truth(real_run: RealRun) -> Truth:
    return real_run.truth


def ts(event: Event) -> int:
    return int(event["envelope"]["ts_mono_ns"])


def within(event: Event, windows: list[Window]) -> bool:
    return any(ts(event) in window for window in windows)


def body(event: Event) -> Event:
    return {k: v for k, v in event.items() if k != "envelope"}


def internal(display_hex: str) -> bytes:
    """A hash as the probes pass it: Core's internal (little-endian) byte order."""
    return bytes.fromhex(display_hex)[::-1]


# --------------------------------------------------------------------------- books


def test_books_balance_and_every_seq_arrives(
    real_run: RealRun, events: dict[str, list[Event]]
) -> None:
    """delivered + lost == fired with nothing lost, the strict audit passes, and every
    stream's seqs run 1..fired without a gap, for all 20 tracepoints."""
    books = final_books(real_run.records)
    usdt_streams = {spec.name for spec in EVENTS if spec.usdt}
    assert {stream for _, stream in books} == usdt_streams
    checked = verdicts(real_run.records)
    assert {v.key[2] for v in checked} >= set(events)
    for verdict in checked:
        assert verdict.ok, verdict
        assert verdict.lost == 0, verdict
    for (_, stream), book in books.items():
        delivered = events.get(stream, [])
        assert [e["envelope"]["seq"] for e in delivered] == list(range(1, book["fired"] + 1))
        assert all(e["envelope"]["lost_before"] == 0 for e in delivered)
        assert book["acked"] == book["fired"] == len(delivered), book
        assert sum(book["lost"].values()) == 0, book
    assert set(events) == usdt_streams - QUIET_STREAMS
    # Every value the real node passed decoded: nothing became a dead letter.
    assert [r.error for r in real_run.records if r.error is not None] == []
    assert [r for r in real_run.records if r.topic.endswith(".deadletter")] == []


def test_envelopes_name_one_session_of_node_a_inside_the_run(
    real_run: RealRun, events: dict[str, list[Event]], truth: Truth
) -> None:
    """One session, node A's id, source USDT, and probe times inside the run on both
    clocks: monotonic after the bridge started attaching and before A's stop returned,
    wall clock between the run's start and end."""
    everything = [e for stream in events.values() for e in stream]
    assert len({e["envelope"]["session_id"] for e in everything}) == 1
    wall_start, wall_end = truth.run_wall_ns
    for event in everything:
        envelope = event["envelope"]
        assert envelope["node_id"] == NODE_ID
        assert envelope["source"] == "USDT"
        assert truth.attached.start_ns <= ts(event) <= truth.stop[0].end_ns, envelope
        assert wall_start <= envelope["ts_wall_ns"] <= wall_end, envelope
    for record in real_run.records:
        if record.value is not None and "envelope" in record.value:
            assert record.key == NODE_ID.encode()
            assert record.timestamp_ms == record.value["envelope"]["ts_wall_ns"] // 1_000_000
            assert record.schema is not None
            assert record.headers == {
                "stability": record.schema.stability.encode(),
                "schema_fp": record.schema.fingerprint.hex().encode(),
                "source": b"usdt",
                "node": NODE_ID.encode(),
            }


# --------------------------------------------------------------------------- validation


def legacy_sigops(script_hex: str) -> int:
    """GetSigOpCount(fAccurate=false): CHECKSIG(VERIFY) 1, CHECKMULTISIG(VERIFY) 20."""
    script, i, count = bytes.fromhex(script_hex), 0, 0
    while i < len(script):
        op = script[i]
        i += 1
        if 0x01 <= op <= 0x4B:
            i += op
        elif op in (0x4C, 0x4D, 0x4E):
            width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            i += width + int.from_bytes(script[i : i + width], "little")
        elif op in (0xAC, 0xAD):
            count += 1
        elif op in (0xAE, 0xAF):
            count += 20
    return count


def sigop_cost(block: dict[str, Any]) -> int:
    """GetTransactionSigOpCost summed over the block, for the script types this run
    makes: legacy sigops x4, one per P2WPKH spend, none for taproot key spends."""
    cost = 0
    for tx in block["tx"]:
        for vin in tx["vin"]:
            if "coinbase" in vin:
                cost += 4 * legacy_sigops(vin["coinbase"])
                continue
            cost += 4 * legacy_sigops(vin["scriptSig"]["hex"])
            kind = vin["prevout"]["scriptPubKey"]["type"]
            assert kind in ("witness_v0_keyhash", "witness_v1_taproot"), kind
            cost += 1 if kind == "witness_v0_keyhash" else 0
        cost += sum(4 * legacy_sigops(out["scriptPubKey"]["hex"]) for out in tx["vout"])
    return cost


def test_block_connected_matches_getblock(events: dict[str, list[Event]], truth: Truth) -> None:
    """Every block A connected, in order: hash, height, tx count, inputs (coinbase
    included), sigop cost, and a duration in ns that fits the call that connected it."""
    connected = events["validation:block_connected"]
    assert len(connected) == truth.tip_height == usdt_scenario.A_BLOCKS + usdt_scenario.B_BLOCKS + 1
    for event in connected:
        block = truth.block_at(event["height"])
        assert body(event) == {
            "block_hash": internal(block["hash"]),
            "block_hash_hex": block["hash"],
            "height": block["height"],
            "transactions": block["nTx"],
            "inputs": sum(len(tx["vin"]) for tx in block["tx"]),
            "sigops": sigop_cost(block),
            "duration_ns": event["duration_ns"],
        }
        mined_by_a = block["height"] in truth.a_mined_heights
        windows = truth.a_mining if mined_by_a else truth.b_mining
        (window,) = [w for w in windows if ts(event) in w]
        assert 0 < event["duration_ns"] < window.duration_ns
    assert [e["height"] for e in connected] == list(range(1, truth.tip_height + 1))
    assert any(sigop_cost(truth.block_at(h)) > 0 for h in range(1, truth.tip_height + 1))


# --------------------------------------------------------------------------- utxocache


def coin(txid: str, index: int, height: int, value_sat: int, coinbase: bool) -> Event:
    return {
        "txid": internal(txid),
        "txid_hex": txid,
        "index": index,
        "height": height,
        "value": value_sat,
        "is_coinbase": coinbase,
    }


def key(coin_fields: Event) -> tuple[Any, ...]:
    return tuple(sorted(coin_fields.items()))


def prevouts(truth: Truth) -> dict[tuple[str, int], Event]:
    """Every coin spent in A's chain, as the node describes it (getblock verbosity 3)."""
    out = {}
    for block in truth.blocks:
        for tx in block["tx"]:
            for vin in tx["vin"]:
                if "coinbase" not in vin:
                    prev = vin["prevout"]
                    out[(vin["txid"], vin["vout"])] = coin(
                        vin["txid"],
                        vin["vout"],
                        prev["height"],
                        sats(prev["value"]),
                        prev["generated"],
                    )
    return out


def block_outputs(block: dict[str, Any]) -> list[Event]:
    """The coins a block creates: every output but provably unspendable ones (AddCoin
    skips OP_RETURN, e.g. the witness commitment)."""
    made = []
    for position, tx in enumerate(block["tx"]):
        for out in tx["vout"]:
            if out["scriptPubKey"]["type"] != "nulldata":
                made.append(
                    coin(tx["txid"], out["n"], block["height"], sats(out["value"]), position == 0)
                )
    return made


def test_utxocache_add_and_spent_match_the_chain(
    events: dict[str, list[Event]], truth: Truth
) -> None:
    """utxocache fires for every coins view, so A's own mining counts twice: once when
    generatetoaddress tests the new block on a scratch view (TestBlockValidity) and once
    when it connects; B's blocks count once. The mempool check replays A's mempool at
    height INT_MAX. Each event must be a coin as getblock / gettransaction show it."""
    adds = events["utxocache:add"]
    chain_adds = Counter(key(body(e)) for e in adds if e["height"] != MEMPOOL_HEIGHT)
    expected: Counter[tuple[Any, ...]] = Counter()
    for block in truth.blocks:
        times = 2 if block["height"] in truth.a_mined_heights else 1
        for made in block_outputs(block):
            expected[key(made)] += times
    assert chain_adds == expected

    wallet_windows = [wtx.window for wtx in truth.wallet_txs]
    mempool_adds = [e for e in adds if e["height"] == MEMPOOL_HEIGHT]
    assert all(within(e, wallet_windows) for e in mempool_adds)
    wallet_outputs = {
        key(coin(wtx.txid, out["n"], MEMPOOL_HEIGHT, sats(out["value"]), False))
        for wtx in truth.wallet_txs
        for out in wtx.decoded["vout"]
    }
    assert {key(body(e)) for e in mempool_adds} == wallet_outputs

    spent_coins = prevouts(truth)
    spent = events["utxocache:spent"]
    while_mining = Counter(key(body(e)) for e in spent if within(e, truth.a_mining))
    expected = Counter()
    for block in truth.blocks:
        if block["height"] in truth.a_mined_heights:
            for tx in block["tx"][1:]:
                for vin in tx["vin"]:
                    expected[key(spent_coins[(vin["txid"], vin["vout"])])] += 2
    assert while_mining == expected
    assert sum(expected.values()) > 0
    wallet_inputs = {key(spent_coins[i]) for wtx in truth.wallet_txs for i in wtx.inputs}
    replayed = [e for e in spent if not within(e, truth.a_mining)]
    assert replayed
    assert all(within(e, wallet_windows) for e in replayed)
    assert {key(body(e)) for e in replayed} == wallet_inputs


def test_flushes_match_gettxoutsetinfo(events: dict[str, list[Event]], truth: Truth) -> None:
    """gettxoutsetinfo syncs the cache to disk and keeps it (FORCE_SYNC); the stop
    flushes it twice (FORCE_FLUSH, as the reference says: N coins, then 0). The first
    sync holds exactly the UTXO set; the second also the spent coins the last block
    took from it; the stop finds exactly the UTXO set of the second sync, which is also
    how we know the syncs kept the cache."""
    flushes = events["utxocache:flush"]
    first, second = truth.txoutsets
    sync_height = first["height"]
    spent_since = sum(
        1
        for block in truth.blocks
        if block["height"] > sync_height
        for tx in block["tx"][1:]
        for vin in tx["vin"]
        if vin["prevout"]["height"] <= sync_height
    )
    assert spent_since > 0
    expected = [
        ("FORCE_SYNC", first["txouts"], truth.syncs[0]),
        ("FORCE_SYNC", second["txouts"] + spent_since, truth.syncs[1]),
        ("FORCE_FLUSH", second["txouts"], truth.stop[0]),
        ("FORCE_FLUSH", 0, truth.stop[0]),
    ]
    assert len(flushes) == len(expected)
    for event, (mode, count, window) in zip(flushes, expected, strict=True):
        assert (event["mode"], event["mode_raw"], event["coins_count"]) == (mode, None, count)
        assert event["is_flush_for_prune"] is False
        assert ts(event) in window
        assert 0 < event["duration_us"] * 1000 < window.duration_ns
        assert event["coins_mem_usage"] > 0


# --------------------------------------------------------------------------- mempool


def test_mempool_added_and_removed_match_the_entries(
    events: dict[str, list[Event]], truth: Truth
) -> None:
    """Both wallet transactions enter with getmempoolentry's vsize and base fee; the
    original leaves as replaced, the replacement as mined, with their entry times."""
    sent, bumped = truth.wallet_txs
    assert [body(e) for e in events["mempool:added"]] == [
        {
            "txid": internal(wtx.txid),
            "txid_hex": wtx.txid,
            "vsize": wtx.entry["vsize"],
            "fee": sats(wtx.entry["fees"]["base"]),
        }
        for wtx in (sent, bumped)
    ]
    for event, wtx in zip(events["mempool:added"], (sent, bumped), strict=True):
        assert ts(event) in wtx.window, wtx.kind
    removed = events["mempool:removed"]
    assert [body(e) for e in removed] == [
        {
            "txid": internal(wtx.txid),
            "txid_hex": wtx.txid,
            "reason": reason,
            "reason_raw": None,
            "vsize": wtx.entry["vsize"],
            "fee": sats(wtx.entry["fees"]["base"]),
            "entry_time": wtx.entry["time"],
        }
        for wtx, reason in ((sent, "REPLACED"), (bumped, "BLOCK"))
    ]
    assert ts(removed[0]) in bumped.window
    assert ts(removed[1]) in truth.a_mining[-1]


def test_mempool_replaced_matches_bumpfee(events: dict[str, list[Event]], truth: Truth) -> None:
    """All eight arguments: the replaced entry, and the replacement's txid, vsize and
    modified fee (a single transaction, so replaced_by_transaction)."""
    sent, bumped = truth.wallet_txs
    (replaced,) = events["mempool:replaced"]
    assert body(replaced) == {
        "replaced_txid": internal(sent.txid),
        "replaced_txid_hex": sent.txid,
        "replaced_vsize": truth.replaced_entry["vsize"],
        "replaced_fee": sats(truth.replaced_entry["fees"]["base"]),
        "replaced_entry_time": truth.replaced_entry["time"],
        "replacement_id": internal(bumped.txid),
        "replacement_id_hex": bumped.txid,
        "replacement_vsize": bumped.entry["vsize"],
        "replacement_fee": sats(bumped.entry["fees"]["modified"]),
        "replaced_by_transaction": True,
    }
    assert bumped.fee_sat > sent.fee_sat
    assert ts(replaced) in bumped.window


def test_mempool_rejected_matches_the_reject_reasons(
    events: dict[str, list[Event]], truth: Truth
) -> None:
    """Each refusal, from testmempoolaccept and sendrawtransaction alike: the txid and
    the reject reason A gave (sendrawtransaction appends details after a comma)."""
    rejected = events["mempool:rejected"]
    assert len(rejected) == len(truth.rejections) == 3
    for event, refusal in zip(rejected, truth.rejections, strict=True):
        assert event["txid_hex"] == refusal.txid
        assert event["txid"] == internal(refusal.txid)
        if refusal.via == "testmempoolaccept":
            assert event["reason"] == refusal.reason
        else:
            assert refusal.reason.startswith(event["reason"] + ","), refusal.reason
        assert ts(event) in refusal.window
    assert [e["reason"] for e in rejected] == [
        "min relay fee not met",
        "dust",
        "min relay fee not met",
    ]


# --------------------------------------------------------------------------- wallet


def test_coin_selection_matches_the_wallet_transactions(
    events: dict[str, list[Event]], truth: Truth
) -> None:
    """Per wallet transaction, CreateTransaction's sequence (selected_coins,
    normal_create_tx_internal, attempting_aps_create_tx, selected_coins,
    aps_create_tx_internal); the attempt the wallet kept has the fee gettransaction
    reports, the change output's position and the inputs' total value."""
    streams = [name for name in events if name.startswith("coin_selection:")]
    everything = sorted((e for s in streams for e in events[s]), key=ts)
    assert all(within(e, [wtx.window for wtx in truth.wallet_txs]) for e in everything)
    for wtx in truth.wallet_txs:
        mine = [e for e in everything if ts(e) in wtx.window]
        assert [e["envelope"]["stream"].split(":")[1] for e in mine] == [
            "selected_coins",
            "normal_create_tx_internal",
            "attempting_aps_create_tx",
            "selected_coins",
            "aps_create_tx_internal",
        ], wtx.kind
        first, normal, _attempting, second, aps = mine
        assert {e["wallet_name"] for e in mine} == {WALLET}
        assert normal["success"] is True
        assert aps["use_aps"] == (aps["success"] and aps["fee"] <= normal["fee"])
        kept, selection = (aps, second) if aps["use_aps"] else (normal, first)
        assert kept["fee"] == wtx.fee_sat, wtx.kind
        assert kept["change_pos"] == wtx.change_pos, wtx.kind
        assert selection["selected_value"] == sum(wtx.input_values_sat), wtx.kind
        assert wtx.amount_sat < selection["target"] <= selection["selected_value"]
        for chosen in (first, second):
            assert chosen["algorithm_raw"] is None
            assert chosen["target"] <= chosen["selected_value"]
        if wtx.kind == "bump":
            # bumpfee keeps the original inputs: coin control preselects all of them.
            assert wtx.inputs == truth.wallet_txs[0].inputs
            assert selection["algorithm"] == "MANUAL"
        else:
            assert selection["algorithm"] in ("BNB", "KNAPSACK", "SRD", "CG")


# --------------------------------------------------------------------------- net


def conn_type(peer: dict[str, Any]) -> str:
    """getpeerinfo's connection_type as the catalogue's ConnectionType symbol."""
    return str(peer["connection_type"]).upper().replace("-", "_")


def connection(peer: dict[str, Any], fifth: str, value: int) -> Event:
    return {
        "peer_id": peer["id"],
        "peer_addr": peer["addr"],
        "conn_type": conn_type(peer),
        "conn_type_raw": None,
        "network": NETWORK_SYMBOL[peer["network"]],
        "network_raw": None,
        fifth: value,
    }


def test_connections_match_getpeerinfo(events: dict[str, list[Event]], truth: Truth) -> None:
    """A's manual outbound connection, B's inbound one and the raw peer's, as getpeerinfo
    lists them, each counting the connections of its direction; then closed, in order:
    the raw peer once A drops it, B's inbound one after disconnectnode, the last during
    A's stop, each with its conntime."""
    (outbound,) = [p for p in truth.peers_at_connect if not p["inbound"]]
    (inbound,) = [p for p in truth.peers_at_connect if p["inbound"]]
    raw = truth.misbehaving_peer
    assert outbound["connection_type"] == "manual"
    assert [body(e) for e in events["net:outbound_connection"]] == [
        connection(outbound, "existing_connections", 1)
    ]
    assert [body(e) for e in events["net:inbound_connection"]] == [
        connection(inbound, "existing_connections", 1),
        connection(raw, "existing_connections", 2),
    ]
    (remaining,) = truth.remaining_peers
    closed = events["net:closed_connection"]
    assert [body(e) for e in closed] == [
        connection(peer, "time_established", peer["conntime"])
        for peer in (raw, truth.disconnected, remaining)
    ]
    assert truth.disconnected["id"] == inbound["id"]
    assert remaining["id"] == outbound["id"]
    # Core fires closed_connection just after resetting the socket, so the raw peer can
    # see EOF (and disconnectnode can return) a moment before it fires. One thread, the
    # socket handler, closes both, in that order; the stop closes the last.
    assert truth.misbehave[0].start_ns < ts(closed[0])
    assert truth.disconnect[0].start_ns < ts(closed[1])
    assert ts(closed[2]) in truth.stop[0]


def test_misbehaving_matches_the_raw_peer(events: dict[str, list[Event]], truth: Truth) -> None:
    """The raw peer that announced 2001 headers, with Core's reason for it."""
    (event,) = events["net:misbehaving_connection"]
    assert body(event) == {
        "peer_id": truth.misbehaving_peer["id"],
        "reason": f"headers message size = {usdt_scenario.TOO_MANY_HEADERS}",
    }
    assert ts(event) in truth.misbehave[0]


def test_message_bytes_match_getpeerinfo_per_type(
    events: dict[str, list[Event]], truth: Truth
) -> None:
    """bytessent_per_msg / bytesrecv_per_msg of each peer, per message type, equal the
    payload sizes traced plus each transport's framing (24 B on v1, the packet overhead
    on v2), for every message traced before a quiet getpeerinfo."""
    cutoff = truth.snapshot.before_ns
    for peer in truth.snapshot.peers:
        transport = peer["transport_protocol_type"]
        for stream, counted in (
            ("net:outbound_message", peer["bytessent_per_msg"]),
            ("net:inbound_message", peer["bytesrecv_per_msg"]),
        ):
            traced: dict[str, int] = defaultdict(int)
            for event in events[stream]:
                if event["peer_id"] == peer["id"] and ts(event) < cutoff:
                    traced[event["msg_type"]] += event["msg_size"] + header_overhead(
                        event["msg_type"], transport
                    )
            assert dict(traced) == counted, (stream, transport)
    transports = {p["transport_protocol_type"] for p in truth.snapshot.peers}
    assert transports == {"v1", "v2"}


def test_message_peers_match_getpeerinfo(events: dict[str, list[Event]], truth: Truth) -> None:
    """Every message names one of A's three peers with its address and connection type."""
    for stream in ("net:inbound_message", "net:outbound_message"):
        assert {e["peer_id"] for e in events[stream]} == {
            *(p["id"] for p in truth.peers_at_connect),
            truth.misbehaving_peer["id"],
        }
        for event in events[stream]:
            peer = truth.peer(event["peer_id"])
            assert event["peer_addr"] == peer["addr"]
            assert event["conn_type"] == conn_type(peer)
            assert event["conn_type_raw"] is None


def compact_size(data: bytes, at: int) -> tuple[int, int]:
    first = data[at]
    if first < 0xFD:
        return first, at + 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[at + 1 : at + 1 + width], "little"), at + 1 + width


def entries(payload: bytes, size: int, width: int, skip: int = 0, tail: int = 0) -> list[bytes]:
    """The complete entries of a count-prefixed list of ``width``-byte entries (after
    ``skip`` bytes, before ``tail`` more) in a possibly cut payload, once the count is
    shown to account for the whole message's size."""
    count, at = compact_size(payload, skip)
    assert size == at + count * width + tail, (count, size)
    return [
        payload[at + n * width : at + (n + 1) * width]
        for n in range(count)
        if at + (n + 1) * width <= len(payload)
    ]


def block_hash_of(header: bytes) -> str:
    return sha256d(header[:80])[::-1].hex()


# Messages whose payload is empty by definition.
EMPTY_PAYLOADS = frozenset({"verack", "wtxidrelay", "sendaddrv2", "sendheaders", "getaddr"})


def check_payload(event: Event, inbound: bool, truth: Truth, known: set[str]) -> None:
    """One captured payload against what A's RPC says the message must contain."""
    msg, size, kind = event["msg"], event["msg_size"], event["msg_type"]
    if kind in EMPTY_PAYLOADS:
        assert size == 0
    elif kind == "block":
        raw = truth.raw_blocks[block_hash_of(msg)]
        assert (msg, size) == (raw[: len(msg)], len(raw))
    elif kind == "cmpctblock":
        assert block_hash_of(msg) in known
    elif kind == "headers" and event["peer_id"] == truth.misbehaving_peer["id"]:
        assert (compact_size(msg, 0)[0], size) == (usdt_scenario.TOO_MANY_HEADERS, 3)
    elif kind == "headers":
        headers = entries(msg, size, 81)  # none, in an answer that has nothing new
        assert all(h[80] == 0 and block_hash_of(h) in known for h in headers)
    elif kind in ("inv", "getdata"):
        assert all(item[4:][::-1].hex() in known for item in entries(msg, size, 36))
    elif kind == "getheaders":
        locator = entries(msg, size, 32, skip=4, tail=32)
        assert all(h[::-1].hex() in known for h in locator)
    elif kind == "tx":
        raws = [bytes.fromhex(wtx.hex) for wtx in truth.wallet_txs]
        assert any(raw[: len(msg)] == msg and len(raw) == size for raw in raws)
    elif kind in ("ping", "pong", "feefilter"):
        assert size == 8
    elif kind == "sendcmpct":
        assert size == 9
        assert msg[0] in (0, 1)
        assert struct.unpack_from("<Q", msg, 1) == (2,)  # compact blocks version 2
    elif kind == "version":
        version, services = struct.unpack_from("<iQ", msg)
        agent_len, at = compact_size(msg, 80)
        if inbound:  # the peer's version: what getpeerinfo reports of the peer
            peer = truth.peer(event["peer_id"])
            assert version == peer["version"]
            assert services == int(peer["services"], 16)
            assert msg[at : at + agent_len].decode() == peer["subver"]
        else:  # A's own: what B's getpeerinfo reports of A
            (a_at_b,) = {(p["version"], p["services"], p["subver"]) for p in truth.a_as_b_sees_it}
            assert (version, f"{services:016x}", msg[at : at + agent_len].decode()) == a_at_b
    else:
        pytest.fail(f"unexpected message type {kind}")


def test_message_payloads_match_what_the_node_sent(
    events: dict[str, list[Event]], truth: Truth
) -> None:
    """Captured payloads are the real messages' first PAYLOAD_CAP bytes: blocks and
    transactions byte for byte as getblock / gettransaction serialize them, every hash in
    headers, cmpctblock, getheaders, inv and getdata one A knows (with counts that
    account for the full size), pongs echoing pings, feefilters as getpeerinfo's
    minfeefilter, and each peer's version as getpeerinfo reports that peer."""
    known = truth.known_hashes()
    inbound, outbound = events["net:inbound_message"], events["net:outbound_message"]
    for stream, is_inbound in ((inbound, True), (outbound, False)):
        for event in stream:
            assert len(event["msg"]) == min(event["msg_size"], PAYLOAD_CAP)
            assert event["msg_truncated"] == (event["msg_size"] > PAYLOAD_CAP)
            check_payload(event, is_inbound, truth, known)
    for received, sent in ((inbound, outbound), (outbound, inbound)):
        pings = {(e["peer_id"], e["msg"]) for e in sent if e["msg_type"] == "ping"}
        pongs = [(e["peer_id"], e["msg"]) for e in received if e["msg_type"] == "pong"]
        assert pongs
        assert set(pongs) <= pings
    for peer in truth.snapshot.peers:
        (*_, last) = [
            e["msg"]
            for e in inbound
            if e["peer_id"] == peer["id"]
            and e["msg_type"] == "feefilter"
            and ts(e) < truth.snapshot.before_ns
        ]
        assert struct.unpack("<q", last) == (sats(peer["minfeefilter"]),)
    kinds = {e["msg_type"] for e in (*inbound, *outbound)}
    assert {"block", "cmpctblock", "headers", "inv", "getdata", "tx", "version"} <= kinds
    assert any(e["msg_truncated"] for e in (*inbound, *outbound))
