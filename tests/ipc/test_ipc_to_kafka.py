"""Emulated IPC node → real Unix socket → bridge (IPC source) → real Kafka → decoded back.

One run of the emulated node with every stream it offers (utxo, net, chain,
node_notifications) and the bridge subscribed to all of them, following the tip and
polling snapshots; every test below checks one aspect of what arrived. Both sides speak
real pycapnp over a real socket, the emulator waits (--wait-start) until the bridge is
subscribed, and its --record says exactly what it sent, so every value and every count
is compared exactly.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("capnp")

import fastavro.validation

from bridge.consume import ConsumedRecord
from bridge.emulator.ipc_node import IpcNode
from bridge.emulator.ipc_report import IpcReport, RecordLine
from bridge.emulator.ipc_scenario import IpcScenario, StreamName
from bridge.events.catalog import ALL_EVENTS, BY_NAME
from tests.ipc.ipc_harness import (
    BRIDGE_STREAMS,
    NET_STREAM,
    NODE_ID,
    SNAPSHOT_STREAMS,
    TIP_STREAM,
    by_session_and_stream,
    dead_letters,
    event_lines,
    expected_fields,
    fields_of,
    ipc_settings,
    running_ipc_bridge,
    sent_by_bridge_stream,
)
from tests.support.pipeline import final_books, read_topics, verdicts

pytestmark = [pytest.mark.ipc, pytest.mark.kafka, pytest.mark.slow]

COUNTS: dict[StreamName, int] = {"utxo": 40, "net": 88, "chain": 60, "node_notifications": 27}
PAYLOAD_CAP = 256  # ipc.max_payload_bytes: below the edge payloads (up to 4,000,000 B)
POLL_S = 0.5
ZERO_LOSS = {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}


@dataclass(frozen=True)
class Run:
    """One traced run: what the node sent and reported, and what the topics hold."""

    report: IpcReport
    lines: list[RecordLine]
    records: list[ConsumedRecord]
    session_id: str
    attached: dict[str, Any]  # the status file while attached
    status: dict[str, Any]  # ... and once the bridge stopped
    mono_start_ns: int
    mono_end_ns: int
    wall_offset_ns: int

    def stream(self, name: str) -> list[ConsumedRecord]:
        return by_session_and_stream(self.records)[(self.session_id, name)]

    def values(self, name: str) -> list[dict[str, Any]]:
        return [r.value for r in self.stream(name) if r.value is not None]


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp_path = tmp_path_factory.mktemp("ipc_to_kafka")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    record = tmp_path / "sent.jsonl"
    scenario = IpcScenario(
        streams=("utxo", "net", "chain", "node_notifications"),
        counts=tuple(COUNTS.items()),
        values="edge",
        wait_start=True,
        linger=True,
    )
    mono_start = time.monotonic_ns()
    with IpcNode() as node:
        node.start(scenario, record)
        settings = ipc_settings(
            kafka_bootstrap,
            prefix,
            node.socket,
            poll_interval_s=POLL_S,
            max_payload_bytes=PAYLOAD_CAP,
            reattach=False,
        )
        with running_ipc_bridge(settings, tmp_path) as bridge:
            attached = bridge.wait_for("attached")
            session = attached["session_id"]
            node.go()
            for stream, count in COUNTS.items():
                bridge.wait_captured(session, BRIDGE_STREAMS[stream], count)
            # Everything was sent: the chain stands still now. Let the tip follower see
            # the last tip and the poller take a few snapshots of the final state.
            time.sleep(3 * POLL_S)
            report = node.stop()
            status = bridge.wait_for("stopped")
    mono_end = time.monotonic_ns()
    return Run(
        report=report,
        lines=event_lines(record),
        records=read_topics(kafka_bootstrap, prefix),
        session_id=attached["session_id"],
        attached=attached,
        status=status,
        mono_start_ns=mono_start,
        mono_end_ns=mono_end,
        wall_offset_ns=time.time_ns() - time.monotonic_ns(),
    )


def check_envelope(run: Run, record: ConsumedRecord, stream: str, seq: int) -> None:
    """The envelope and Kafka metadata every IPC event record must carry."""
    assert record.value is not None
    envelope = record.value["envelope"]
    assert envelope["node_id"] == NODE_ID
    assert envelope["source"] == "IPC"
    assert envelope["session_id"] == run.session_id
    assert envelope["stream"] == stream
    assert envelope["seq"] == seq
    assert envelope["lost_before"] == 0
    assert envelope["lost"] == ZERO_LOSS
    assert run.mono_start_ns <= envelope["ts_mono_ns"] <= run.mono_end_ns
    # The wall time is the monotonic time plus the clocks' offset (slewing aside).
    offset = envelope["ts_wall_ns"] - envelope["ts_mono_ns"]
    assert abs(offset - run.wall_offset_ns) < 1_000_000_000
    assert record.timestamp_ms == envelope["ts_wall_ns"] // 1_000_000
    assert record.key == NODE_ID.encode()
    assert record.headers["source"] == b"ipc"
    assert record.headers["node"] == NODE_ID.encode()
    assert record.schema is not None
    assert record.headers["schema_fp"] == record.schema.fingerprint.hex().encode()
    assert record.headers["stability"] == record.schema.stability.encode()


def check_stream_exact(run: Run, stream: str) -> int:
    """Every event sent on ``stream`` arrived once, in order, with the exact values."""
    sent = sent_by_bridge_stream(run.lines)[stream]
    got = run.stream(stream)
    assert len(got) == len(sent), stream
    for seq, (line, record) in enumerate(zip(sent, got, strict=True), start=1):
        check_envelope(run, record, stream, seq)
        assert record.value is not None
        assert fields_of(record.value) == expected_fields(line), (stream, seq, line)
    return len(sent)


# ------------------------------------------------------------------------------------
# Exact values.
# ------------------------------------------------------------------------------------


def test_every_ipc_event_type_arrives(run: Run) -> None:
    names = {name for _, name in by_session_and_stream(run.records)}
    for spec in ALL_EVENTS:
        if spec.ipc is None:
            continue
        if spec.name in ("net:inbound_message", "net:outbound_message"):
            continue  # both arrive on net:messages (checked below)
        assert spec.name in names, f"no {spec.name} record arrived"
    kinds = {r.schema.full_name for r in run.stream(NET_STREAM) if r.schema is not None}
    assert kinds == {"tracebridge.net.InboundMessage", "tracebridge.net.OutboundMessage"}


def test_utxocache_add_spent_uncache_exact(run: Run) -> None:
    total = 0
    for stream in ("utxocache:add", "utxocache:spent", "utxocache:uncache"):
        total += check_stream_exact(run, stream)
        # The same Avro records as the tracepoints'.
        assert {r.schema.full_name for r in run.stream(stream) if r.schema} == {
            f"tracebridge.utxocache.{BY_NAME[stream].record_name}"
        }
    assert total == COUNTS["utxo"] == run.report.streams["utxo"].sent
    values = [v["value"] for v in run.values("utxocache:add")]
    assert {0, -1, -(2**63), 2**63 - 1, 2_100_000_000_000_000} <= set(values), "edge values"


def test_net_messages_exact(run: Run) -> None:
    assert check_stream_exact(run, NET_STREAM) == COUNTS["net"]
    sent = sent_by_bridge_stream(run.lines)[NET_STREAM]
    for line, record in zip(sent, run.stream(NET_STREAM), strict=True):
        assert record.value is not None
        assert record.schema is not None
        direction = "InboundMessage" if line["inbound"] else "OutboundMessage"
        assert record.schema.full_name == f"tracebridge.net.{direction}"
        assert record.topic.endswith(".net")
        # The node's CLOCK_MONOTONIC microseconds, in nanoseconds.
        assert record.value["envelope"]["ts_mono_ns"] == line["timestampUs"] * 1000
    got = run.values(NET_STREAM)
    # The edge table reached the topic: cut payloads, a 4 MB message, unknown types.
    assert any(v["msg_truncated"] for v in got)
    assert any(not v["msg_truncated"] and v["msg_size"] > 0 for v in got)
    assert max(v["msg_size"] for v in got) == 4_000_000
    assert max(len(v["msg"]) for v in got) == PAYLOAD_CAP
    assert {v["conn_type_raw"] for v in got} == {None, "unknown-conn-type-21c"}
    assert min(v["peer_id"] for v in got) == -(2**63)


def test_chain_notifications_exact(run: Run) -> None:
    total = sum(check_stream_exact(run, s) for s in BRIDGE_STREAMS["chain"])
    assert total == COUNTS["chain"] == run.report.streams["chain"].sent
    # txid, wtxid and vsize the bridge derived equal the emulator's own (compared in
    # check_stream_exact); both kinds of transaction were among them.
    txs = run.values("chain:transaction_added_to_mempool")
    assert any(v["txid"] == v["wtxid"] for v in txs), "a transaction without witnesses"
    assert any(v["txid"] != v["wtxid"] for v in txs), "a segwit transaction"
    reasons = {v["reason"] for v in run.values("chain:transaction_removed_from_mempool")}
    assert reasons == {"EXPIRY", "SIZELIMIT", "REORG", "CONFLICT", "REPLACED"}
    assert run.values("chain:block_disconnected"), "the script includes a reorg"
    connected = run.values("chain:block_connected")
    assert all(v["role_validated"] and not v["role_historical"] for v in connected)


def test_node_notifications_exact(run: Run) -> None:
    total = sum(check_stream_exact(run, s) for s in BRIDGE_STREAMS["node_notifications"])
    assert total == COUNTS["node_notifications"] == run.report.streams["node_notifications"].sent
    tips = run.values("node:block_tip") + run.values("node:header_tip")
    assert {v["sync_state"] for v in tips} == {"POST_INIT"}
    assert {v["verification_progress"] for v in tips} == {1.0}


def _tip_timeline(run: Run) -> list[tuple[bytes, int]]:
    """Every (hash, height) the chain's tip had, in order, from the chain events."""
    blocks = [
        line
        for line in run.lines
        if line["stream"] == "chain" and line["method"] in ("blockConnected", "blockDisconnected")
    ]
    first = blocks[0]["block"]
    timeline = [(bytes.fromhex(first["prevHash"]), first["height"] - 1)]
    for line in blocks:
        block = line["block"]
        if line["method"] == "blockConnected":
            timeline.append((bytes.fromhex(block["hash"]), block["height"]))
        else:
            timeline.append((bytes.fromhex(block["prevHash"]), block["height"] - 1))
    return timeline


def test_mining_tip_changed_follows_the_tip(run: Run) -> None:
    timeline = _tip_timeline(run)
    tips = run.values(TIP_STREAM)
    for seq, record in enumerate(run.stream(TIP_STREAM), start=1):
        check_envelope(run, record, TIP_STREAM, seq)
    seen = [(v["block_hash"], v["height"]) for v in tips]
    for value in tips:
        assert value["block_hash_hex"] == value["block_hash"][::-1].hex()
        assert value["initial_block_download"] is False
    # The first is the tip at subscription, the last the final tip; in between, tips the
    # chain really had, in order, each different from the one before.
    assert seen[0] == timeline[0]
    assert seen[-1] == timeline[-1]
    assert seen[-1][1] == run.report.tip_height
    position = 0
    for tip in seen:
        position = timeline.index(tip, position)
    assert all(a != b for a, b in itertools.pairwise(seen))


# ------------------------------------------------------------------------------------
# Polled snapshots.
# ------------------------------------------------------------------------------------


def test_polled_snapshots_arrive_valid_and_consistent(run: Run) -> None:
    snapshots = {stream: run.stream(stream) for stream in SNAPSHOT_STREAMS}
    for stream, records in snapshots.items():
        assert len(records) >= 3, f"{stream}: polled every {POLL_S} s for several seconds"
        for seq, record in enumerate(records, start=1):
            check_envelope(run, record, stream, seq)
            assert record.schema is not None
            assert record.schema.full_name == f"tracebridge.node.{BY_NAME[stream].record_name}"
            assert record.topic.endswith(".node")
            assert fastavro.validation.validate(record.value, record.schema.parsed)
    counts = [len(records) for records in snapshots.values()]
    assert max(counts) - min(counts) <= 1, "one snapshot of each per poll"

    # Every poll is plausible; the last of each was taken after the node stood still,
    # so it must equal the node's final state as its events and report describe it.
    peers_final = _check_peers(run)
    _check_network(run, peers_final)
    size, height = _check_mempool_and_chain(run)
    for value in run.values("chain:fee_estimates"):
        assert [e["target"] for e in value["estimates"]] == [2, 6, 12, 144]
        assert all(e["fee_rate"] > 0 for e in value["estimates"])
    final = run.values("chain:fee_estimates")[-1]["estimates"]
    base = 1_000 + 40 * size + 10 * (height % 7)  # the emulator's estimator
    assert [e["fee_rate"] for e in final] == [
        int(base * 1.0 * 6 / (t + 5)) for t in (2, 6, 12, 144)
    ]


def _last_value(run: Run, stream: str, field_name: str) -> Any:
    values = run.values(stream)
    return values[-1][field_name]


def _check_peers(run: Run) -> list[dict[str, Any]]:
    snapshots = run.values("node:peers")
    for snapshot in snapshots:
        peers = snapshot["peers"]
        assert 7 <= len(peers) <= 9, "8 peers, one joining and one leaving per cycle"
        assert len({p["peer_id"] for p in peers}) == len(peers)
        for p in peers:
            assert re.fullmatch(r"10\.\d+\.\d+\.\d+:\d+", p["addr"]), p
            assert p["subver"] == "/Satoshi:30.0.0/"
            assert p["version"] == 70016
            assert p["services"] == 0x0C09
            assert (p["network"], p["network_raw"]) == ("IPV4", None)
            assert p["conn_type"] in ("INBOUND", "OUTBOUND_FULL_RELAY", "BLOCK_RELAY_ONLY")
            assert p["conn_type_raw"] is None
            assert p["inbound"] == (p["conn_type"] == "INBOUND")
            assert p["min_ping_time_us"] == p["ping_time_us"] // 2 > 0
            assert p["relay_txes"] is True
            assert p["starting_height"] == 100
            assert p["last_send"] == p["last_recv"] > p["time_connected"] > 1_700_000_000
    final: list[dict[str, Any]] = snapshots[-1]["peers"]
    assert len(final) == _last_value(run, "node:num_connections_changed", "num_connections")
    return final


def _check_network(run: Run, peers: list[dict[str, Any]]) -> None:
    snapshots = run.values("node:network_stats")
    for earlier, later in itertools.pairwise(snapshots):
        assert later["bytes_recv"] >= earlier["bytes_recv"] > 0
        assert later["bytes_sent"] >= earlier["bytes_sent"] > 0
    for snapshot in snapshots:
        for ban in snapshot["banned"]:
            assert ban["subnet"][10:14] == b"\xff\xff\xc0\x00"  # 192.0.2.x, IPv4-mapped
            assert len(ban["subnet"]) == 33
            assert len(ban["entry"]) == 20
    final = snapshots[-1]
    inbound = sum(p["inbound"] for p in peers)
    assert (final["connections_in"], final["connections_out"]) == (inbound, len(peers) - inbound)
    assert final["network_active"] == _last_value(
        run, "node:network_active_changed", "network_active"
    )
    assert final["banned"] == [], "every ban of the script was lifted again"


def _check_mempool_and_chain(run: Run) -> tuple[int, int]:
    # A snapshot combines several calls, and the chain moves between them while the
    # streams run: each value must have been true at some point; the last snapshot
    # (taken with the chain standing still) must agree with itself.
    for value in run.values("node:mempool_stats"):
        assert value["max_usage"] == 300_000_000
        assert value["relay_min_fee"] == 100
        assert value["min_fee"] in (100, 1000)
        assert value["dynamic_usage"] >= 4_096
    mempool = run.values("node:mempool_stats")[-1]
    assert mempool["min_fee"] == (1000 if mempool["size"] > 50 else 100)
    assert mempool["dynamic_usage"] >= 4_096 + 256 * mempool["size"]
    timeline = _tip_timeline(run)
    hashes = {tip_hash for tip_hash, _ in timeline}
    heights = range(min(h for _, h in timeline), max(h for _, h in timeline) + 1)
    for value in run.values("node:chain_stats"):
        assert value["best_block_hash"] in hashes
        assert value["best_block_hash_hex"] == value["best_block_hash"][::-1].hex()
        assert value["blocks"] in heights
        assert value["header_height"] in heights
        assert value["verification_progress"] == 1.0
        assert value["initial_block_download"] is False
        assert (value["have_pruned"], value["prune_height"]) == (False, -1)
    final = run.values("node:chain_stats")[-1]
    tip_hash, tip_height = timeline[-1]
    assert (final["best_block_hash"], final["blocks"]) == (tip_hash, run.report.tip_height)
    assert final["header_height"] == final["blocks"]
    assert tip_height == run.report.tip_height
    header_times = {
        bytes.fromhex(line["block"]["hash"]): int.from_bytes(
            bytes.fromhex(line["block"]["data"])[68:72], "little"
        )
        for line in run.lines
        if line["stream"] == "chain" and line["method"] == "blockConnected"
    }
    if tip_hash in header_times:
        assert final["header_time"] == header_times[tip_hash]
    size: int = mempool["size"]
    return size, tip_height


# ------------------------------------------------------------------------------------
# Counting.
# ------------------------------------------------------------------------------------


def test_seqs_contiguous_and_final_books_match_what_the_node_offered(run: Run) -> None:
    assert [r.error for r in run.records if r.value is None] == [], "every record decodes"
    assert dead_letters(run.records) == []
    assert run.attached["node_endpoint"] == run.report.socket
    streams = by_session_and_stream(run.records)
    assert {session for session, _ in streams} == {run.session_id}
    for (_, stream), records in streams.items():
        seqs = [r.value["envelope"]["seq"] for r in records if r.value]
        assert seqs == list(range(1, len(seqs) + 1)), stream

    books = final_books(run.records)
    assert {s for _, s in books} == set(run.attached["streams"])
    for (session, stream), book in books.items():
        assert session == run.session_id
        delivered = len(streams.get((session, stream), []))
        assert book["in_flight"] == 0
        assert book["lost"] == ZERO_LOSS, stream
        assert book["fired"] == book["acked"] == book["last_seq"] == delivered, stream
        assert book["fired"] == book["acked"] + sum(book["lost"].values())

    # What the node says it offered (sent + dropped) on each of its streams is what the
    # bridge says fired on the streams it feeds.
    sent = {stream: len(lines) for stream, lines in sent_by_bridge_stream(run.lines).items()}
    for emulated, bridged in BRIDGE_STREAMS.items():
        node = run.report.streams[emulated]
        assert node.offered == node.sent + node.dropped == COUNTS[emulated]
        assert node.dropped == node.discarded == node.failed == 0
        assert sum(books[(run.session_id, s)]["fired"] for s in bridged) == node.offered
        for stream in bridged:
            assert books[(run.session_id, stream)]["fired"] == sent.get(stream, 0), stream
    for check in verdicts(run.records):
        assert check.ok, check
        assert check.lost == 0
    # The status file's last books are the SESSION_END heartbeat's.
    assert {b["stream"]: b for b in run.status["books"]} == {s: b for (_, s), b in books.items()}
