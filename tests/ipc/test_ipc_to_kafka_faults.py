"""The IPC source under stress and faults, end to end against a real broker.

Overload (the node drops and says so), the node going away and coming back, a node of
another version, malformed values and garbage on the connection: in each case the
bridge must keep exact books, and what it cannot deliver it must count.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("capnp")

from bridge.codec._native import Encoder
from bridge.codec.single_object import SchemaStore
from bridge.consume import ConsumedRecord
from bridge.emulator.ipc_bitcoin import ChainSim
from bridge.emulator.ipc_node import IpcNode
from bridge.emulator.ipc_report import IpcReport, RecordLine, read_ipc_records
from bridge.emulator.ipc_scenario import IpcScenario, PingStage, VersionName
from bridge.emulator.ipc_values import UtxoGen, jsonable
from bridge.errors import IpcVersionError
from bridge.sources.ipc import source as ipc_source
from bridge.sources.ipc.session import IpcSourceSession
from tests.ipc.ipc_harness import (
    BRIDGE_STREAMS,
    NET_STREAM,
    NODE_ID,
    TIP_STREAM,
    UTXO_STREAMS,
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

UTXO = BRIDGE_STREAMS["utxo"]
Books = dict[tuple[str, str], dict[str, Any]]


def fired(books: Books, session: str, streams: tuple[str, ...] = UTXO) -> dict[str, int]:
    """The SESSION_END ``fired`` of ``streams`` in ``session``."""
    return {s: book["fired"] for (sid, s), book in books.items() if sid == session and s in streams}


# ------------------------------------------------------------------------------------
# Overload.
# ------------------------------------------------------------------------------------


def test_overload_node_drops_are_counted_exactly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A ping flood at 100,000 events/s into a 256-event queue drained 32 events per
    round trip: the node drops much of it, reports each batch's drops, and the bridge
    turns them into seq gaps and lost.node, exactly."""
    record = tmp_path / "sent.jsonl"
    scenario = IpcScenario(
        streams=("net",),
        ping=True,
        stages=(PingStage(rate=50_000, seconds=0.5),),
        block_interval=0,
        wait_start=True,
    )
    with IpcNode() as node:
        node.start(scenario, record)
        settings = ipc_settings(
            kafka_bootstrap,
            topic_prefix,
            node.socket,
            subscribe=["net"],
            poll_interval_s=0,
            max_queue_events=256,
            max_batch_events=32,
            reattach=False,
        )
        with running_ipc_bridge(settings, tmp_path) as bridge:
            session = bridge.wait_for("attached")["session_id"]
            node.go()
            report = node.wait(timeout=60)
            bridge.wait_for("stopped")
    net = report.streams["net"]
    assert net.offered == net.generated > 20_000
    assert net.dropped > 0, "the flood must overflow the node's queue"
    assert net.dropped == net.dropped_reported, "every drop reached the bridge in a batch"
    assert net.discarded == net.failed == 0

    records = read_topics(kafka_bootstrap, topic_prefix)
    got = by_session_and_stream(records)[(session, NET_STREAM)]
    book = final_books(records)[(session, NET_STREAM)]
    assert book["lost"] == {"kernel": 0, "bridge": 0, "producer": 0, "node": net.dropped}
    assert book["fired"] == net.offered == len(got) + book["lost"]["node"]
    assert len(got) == book["acked"] == net.sent
    checked = verdicts(records)
    assert all(c.ok for c in checked), checked

    # Batch by batch: the first record of a batch says how many the node dropped just
    # before it, and every record carries the running total; values stay exact.
    lines = list(read_ipc_records(record))
    sent = [line for line in lines if line["kind"] == "event"]
    batches = [line for line in lines if line["kind"] == "batch"]
    assert sum(b["count"] for b in batches) == len(sent) == len(got)
    assert sum(b["dropped"] for b in batches) == net.dropped
    seq = position = dropped = 0
    for batch in batches:
        seq += batch["dropped"]
        dropped += batch["dropped"]
        for k in range(batch["count"]):
            value, line = got[position].value, sent[position]
            assert value is not None
            envelope = value["envelope"]
            seq += 1
            assert envelope["seq"] == seq
            assert envelope["lost_before"] == (batch["dropped"] if k == 0 else 0), batch
            assert envelope["lost"]["node"] == dropped
            assert envelope["ts_mono_ns"] == line["timestampUs"] * 1000
            assert fields_of(value) == expected_fields(line)
            position += 1
    assert seq == book["fired"]


# ------------------------------------------------------------------------------------
# The node goes away and comes back.
# ------------------------------------------------------------------------------------


def utxo_expected(n: int) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` utxo events of an emulator run with --values edge --seed 1, as
    (bridge stream, Avro fields): the emulator's own generator, replayed."""
    gen = UtxoGen("edge", 1)
    out = []
    for _ in range(n):
        event = gen.next()
        line = {"stream": "utxo", "method": event.method, **jsonable(event.params)}
        out.append((UTXO_STREAMS[event.method], expected_fields(line)))
    return out


def check_utxo_session(records: list[ConsumedRecord], session: str, n: int) -> None:
    """The session delivered exactly the emulator's first ``n`` utxo events, each
    stream numbered from seq 1."""
    streams = by_session_and_stream(records)
    expected = utxo_expected(n)
    for stream in UTXO:
        want = [fields for name, fields in expected if name == stream]
        got = [r.value for r in streams.get((session, stream), []) if r.value]
        assert [fields_of(v) for v in got] == want, stream
        assert [v["envelope"]["seq"] for v in got] == list(range(1, len(want) + 1))


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_reconnect_after_the_node_is_stopped_or_killed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, how: str
) -> None:
    """The node is stopped (SIGTERM: it unsubscribes and closes) or killed (SIGKILL: the
    connection just breaks, the socket file stays) mid-stream. The first session closes
    exact books; a new node on the same socket gets a new session, exact as well."""
    socket = tmp_path / "node.sock"
    settings = ipc_settings(
        kafka_bootstrap, topic_prefix, socket, subscribe=["utxo"], poll_interval_s=0
    )
    first_report: IpcReport | None = None
    with running_ipc_bridge(settings, tmp_path) as bridge:
        with IpcNode() as first:
            scenario = IpcScenario(streams=("utxo",), count=0, rate=300, wait_start=True)
            first.start(scenario, socket=socket)
            one = bridge.wait_for("attached")["session_id"]
            first.go()
            bridge.wait_captured(one, UTXO, 30)
            if how == "sigterm":
                first_report = first.stop()
            # else: leaving the block kills the node (SIGKILL) and leaves its socket file
        bridge.wait_for("session_ended", session=one)

        record = tmp_path / "second.jsonl"
        with IpcNode() as second:
            scenario = IpcScenario(streams=("utxo",), count=25, wait_start=True, linger=True)
            second.start(scenario, record, socket=socket)
            two = bridge.wait_for("attached", session_not=one)["session_id"]
            second.go()
            bridge.wait_captured(two, UTXO, 25)
            second_report = second.stop()
        bridge.wait_for("session_ended", session=two)
        assert bridge.thread.is_alive()

    assert one != two
    records = read_topics(kafka_bootstrap, topic_prefix)
    books = final_books(records)
    checked = verdicts(records)
    assert {c.key[1] for c in checked} == {one, two}
    assert all(c.ok for c in checked), checked

    # The first session: what arrived is the emulator's sequence, up to where it ended.
    n_one = sum(fired(books, one).values())
    assert n_one >= 30
    check_utxo_session(records, one, n_one)
    if first_report is not None:
        # SIGTERM cancels the stream with at most one call in flight: the node counts it
        # interrupted, and the bridge has it or not, depending on whether the call
        # reached it.
        utxo = first_report.streams["utxo"]
        assert utxo.interrupted <= 1
        assert utxo.offered == utxo.sent + utxo.interrupted
        assert utxo.sent <= n_one <= utxo.sent + utxo.interrupted
        assert utxo.dropped == utxo.discarded == utxo.failed == 0
    # The second session numbers from seq 1 again and is exact against its node.
    fired_two = fired(books, two)
    assert sum(fired_two.values()) == second_report.streams["utxo"].offered == 25
    sent = sent_by_bridge_stream(event_lines(record))
    assert fired_two == {stream: len(sent[stream]) for stream in UTXO}
    check_utxo_session(records, two, 25)


class PreemptedAfterConfigure(IpcSourceSession):
    """The real session; the bridge thread just loses the CPU right after configure()
    until the session has emitted its first record (the tip), as a loaded machine does."""

    def configure(self, encoder: Encoder, store: SchemaStore) -> None:
        super().configure(encoder, store)
        self.wait(5.0)  # returns once the tip follower pushed its record


def test_records_emitted_right_after_configure_are_counted(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record the session emits the moment it subscribes carries the session in its
    envelope and is in the books (the bridge sets the session before configuring)."""
    monkeypatch.setattr(ipc_source, "IpcSourceSession", PreemptedAfterConfigure)
    with IpcNode() as node:
        node.start(IpcScenario(streams=("utxo",), count=5, wait_start=True, linger=True))
        settings = ipc_settings(
            kafka_bootstrap,
            topic_prefix,
            node.socket,
            subscribe=["utxo", "tip"],
            poll_interval_s=0,
            reattach=False,
        )
        with running_ipc_bridge(settings, tmp_path) as bridge:
            session = bridge.wait_for("attached")["session_id"]
            node.go()
            bridge.wait_captured(session, UTXO, 5)
            node.stop()
            bridge.wait_for("stopped")
    records = read_topics(kafka_bootstrap, topic_prefix)
    for record in records:
        assert record.value is not None, record.error
        if "envelope" in record.value:
            envelope = record.value["envelope"]
            assert (envelope["node_id"], envelope["session_id"]) == (NODE_ID, session)
    book = final_books(records)[(session, TIP_STREAM)]
    assert book["fired"] == book["acked"] == 1
    checked = verdicts(records)
    assert all(c.ok for c in checked), checked


def test_attaching_to_a_node_that_is_already_streaming(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The usual case with a real node: it never waits for the bridge."""
    scenario = IpcScenario(
        streams=("utxo", "chain", "node_notifications", "net"),
        count=0,
        rates=(("net", 2000.0),),
    )
    with IpcNode() as node:
        node.start(scenario)
        settings = ipc_settings(
            kafka_bootstrap, topic_prefix, node.socket, poll_interval_s=0, reattach=False
        )
        with running_ipc_bridge(settings, tmp_path) as bridge:
            session = bridge.wait_for("attached")["session_id"]
            bridge.wait_captured(session, UTXO, 300)
            node.stop()
            bridge.wait_for("stopped")
    records = read_topics(kafka_bootstrap, topic_prefix)
    undecodable = [r.error for r in records if r.value is None]
    assert not undecodable
    checked = verdicts(records)
    assert {c.key[1] for c in checked} == {session}
    assert all(c.ok for c in checked), [c for c in checked if not c.ok]


# ------------------------------------------------------------------------------------
# Versions.
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("node_version", "configured"), [("v30", "v31"), ("v31", "v30")])
def test_version_mismatch_is_a_clear_error(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    node_version: VersionName,
    configured: str,
) -> None:
    with IpcNode() as node:
        node.start(IpcScenario(version=node_version, block_interval=0))
        settings = ipc_settings(kafka_bootstrap, topic_prefix, node.socket, version=configured)
        with running_ipc_bridge(settings, tmp_path) as bridge:
            error = bridge.take_error()
            status = bridge.status()
        node.stop()
    assert isinstance(error, IpcVersionError), repr(error)
    message = str(error)
    assert f"ipc.version is '{configured}'" in message
    assert f"the node speaks {node_version}" in message
    assert f"Set ipc.version = 'auto' or '{node_version}'" in message, "the fix is named"
    assert "\n" not in message
    assert "capnp" not in message.lower(), "no Cap'n Proto internals"
    assert status["state"] == "failed"
    assert status["error"] == f"IpcVersionError: {message}"
    assert bridge.wait_for("failed")["error"] == status["error"]
    assert [u["state"] for u in bridge.recorder.history] == ["waiting", "failed"], "no retry"


def regtest_tips(up_to: int) -> dict[int, bytes]:
    """Height -> block hash of the emulator's block-timer chain (seed 1), from 100."""
    chain = ChainSim(seed=1)
    tips = {chain.height: chain.tip}
    while chain.height < up_to:
        chain.connect_block([])
        tips[chain.height] = chain.tip
    return tips


@pytest.mark.parametrize("version", ["v30", "v31"])
def test_auto_detects_the_version_and_follows_the_tip(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    version: VersionName,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.sources.ipc.session")
    with IpcNode() as node:
        node.start(IpcScenario(version=version, block_interval=0.15, wait_start=True))
        settings = ipc_settings(kafka_bootstrap, topic_prefix, node.socket, reattach=False)
        assert settings.ipc.version == "auto"
        with running_ipc_bridge(settings, tmp_path) as bridge:
            session = bridge.wait_for("attached")["session_id"]
            node.go()
            bridge.wait_captured(session, [TIP_STREAM], 6)
            report = node.stop()
            bridge.wait_for("stopped")
    attached = bridge.wait_for("attached")
    assert attached["streams"] == [TIP_STREAM], "a merged node offers only the Mining tip"
    spoken = [r.getMessage() for r in caplog.records if "it speaks" in r.getMessage()]
    assert len(spoken) == 1
    assert f"it speaks {version}; offers ['tip']" in spoken[0]
    skipped = [r.getMessage() for r in caplog.records if "does not offer" in r.getMessage()]
    assert len(skipped) == 4, "net, utxo, chain and node: each reported once"

    records = read_topics(kafka_bootstrap, topic_prefix)
    tips = by_session_and_stream(records)[(session, TIP_STREAM)]
    expected = regtest_tips(report.tip_height)
    heights = []
    for seq, record in enumerate(tips, start=1):
        value = record.value
        assert value is not None
        assert value["envelope"]["seq"] == seq
        assert value["envelope"]["source"] == "IPC"
        assert value["envelope"]["node_id"] == NODE_ID
        assert value["block_hash"] == expected[value["height"]]
        assert value["block_hash_hex"] == expected[value["height"]][::-1].hex()
        assert value["initial_block_download"] is False
        heights.append(value["height"])
    assert heights[0] == 100, "the tip when the bridge subscribed"
    assert heights == sorted(set(heights)), "each tip once, in order"
    assert len(heights) >= 6
    assert heights[-1] >= report.tip_height - 1
    assert all(c.ok for c in verdicts(records))


# ------------------------------------------------------------------------------------
# Malformed values.
# ------------------------------------------------------------------------------------

MALFORMED_STREAM = {
    "utxo": "utxocache:add",
    "net": NET_STREAM,
    "chain": "chain:transaction_added_to_mempool",
    "node_notifications": "node:block_tip",
}
MALFORMED_COUNT = 12


@dataclass(frozen=True)
class MalformedRun:
    session: str
    lines: list[RecordLine]
    report: IpcReport
    records: list[ConsumedRecord]

    def bad(self, emulated: str) -> RecordLine:
        (line,) = [x for x in self.lines if x.get("malformed") and x["stream"] == emulated]
        return line

    def letters(self) -> dict[str, dict[str, Any]]:
        return {letter["stream"]: letter for letter in dead_letters(self.records)}


@pytest.fixture(scope="module")
def malformed_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> MalformedRun:
    """--malformed 3: after three events each stream sends one value no decoder may
    accept: a 31-byte outpoint hash, a msgType that is not UTF-8, a transaction cut
    short, a 31-byte tip hash."""
    tmp_path = tmp_path_factory.mktemp("ipc_malformed")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    record = tmp_path / "sent.jsonl"
    scenario = IpcScenario(
        streams=("utxo", "net", "chain", "node_notifications"),
        count=MALFORMED_COUNT,
        malformed_after=3,
        wait_start=True,
        linger=True,
    )
    with IpcNode() as node:
        node.start(scenario, record)
        settings = ipc_settings(
            kafka_bootstrap,
            prefix,
            node.socket,
            subscribe=["net", "utxo", "chain", "node"],
            poll_interval_s=0,
            reattach=False,
        )
        with running_ipc_bridge(settings, tmp_path) as bridge:
            session = bridge.wait_for("attached")["session_id"]
            node.go()
            for bridged in BRIDGE_STREAMS.values():
                bridge.wait_captured(session, bridged, MALFORMED_COUNT + 1)  # + the bad one
            report = node.stop()
            bridge.wait_for("stopped")
    return MalformedRun(session, event_lines(record), report, read_topics(kafka_bootstrap, prefix))


def test_malformed_values_become_counted_dead_letters(malformed_run: MalformedRun) -> None:
    run = malformed_run
    assert all(run.report.streams[s].malformed == 1 for s in MALFORMED_STREAM)
    letters = run.letters()
    assert len(dead_letters(run.records)) == len(MALFORMED_STREAM)
    assert set(letters) == set(MALFORMED_STREAM.values())
    books = final_books(run.records)
    streams = by_session_and_stream(run.records)
    good = sent_by_bridge_stream(line for line in run.lines if not line.get("malformed"))
    for stream in MALFORMED_STREAM.values():
        letter, book = letters[stream], books[(run.session, stream)]
        assert (letter["node_id"], letter["source"], letter["session_id"]) == (
            NODE_ID,
            "IPC",
            run.session,
        )
        assert letter["reason"], stream
        got = [r.value for r in streams[(run.session, stream)] if r.value]
        # Everything else arrived exactly; the dead letter holds the one missing seq, and
        # the record after it says one was lost before it.
        assert [fields_of(v) for v in got] == [expected_fields(line) for line in good[stream]]
        seqs = [v["envelope"]["seq"] for v in got]
        assert sorted([*seqs, letter["seq"]]) == list(range(1, book["fired"] + 1)), stream
        after = [v["envelope"] for v in got if v["envelope"]["seq"] == letter["seq"] + 1]
        assert [e["lost_before"] for e in after] == [1], stream
        assert after[0]["lost"]["bridge"] == 1
        assert book["dead_lettered"] == book["lost"]["bridge"] == 1, stream
        assert book["fired"] == len(got) + 1 == book["acked"] + 1
        assert book["fired"] == len(good[stream]) + 1, "fired = what the node sent"
    for (_, stream), book in books.items():
        if stream not in letters:
            assert book["dead_lettered"] == sum(book["lost"].values()) == 0, stream
    assert all(c.ok for c in verdicts(run.records))

    net = letters[NET_STREAM]
    assert net["reason"] == "field msg_type: not valid UTF-8"
    assert net["raw"], "the NetMessage's bytes"
    chain = letters["chain:transaction_added_to_mempool"]
    assert chain["reason"].startswith("TransactionError: truncated")
    assert chain["raw"] == bytes.fromhex(run.bad("chain")["tx"])
    utxo = letters["utxocache:add"]
    assert utxo["reason"] == "field txid: 31 bytes, a hash has 32"
    tip = letters["node:block_tip"]
    assert tip["reason"] == "ValueError: field block_hash: 31 bytes, a hash has 32"
    assert tip["raw"] == bytes.fromhex(run.bad("node_notifications")["tip"]["blockHash"])


def test_malformed_utxo_dead_letter_keeps_the_raw_bytes(malformed_run: MalformedRun) -> None:
    """The dead letter holds the UtxoInfo the node sent, so the bad hash can be seen."""
    letter = malformed_run.letters()["utxocache:add"]
    outpoint = bytes.fromhex(malformed_run.bad("utxo")["utxoInfo"]["outpointHash"])
    assert outpoint in letter["raw"]


def test_malformed_net_dead_letter_keeps_the_bad_text(malformed_run: MalformedRun) -> None:
    """The dead letter is the NetMessage as a message of its own, its bad Text included."""
    letter = malformed_run.letters()[NET_STREAM]
    assert bytes.fromhex(malformed_run.bad("net")["msgType"]["hex"]) in letter["raw"]


def test_malformed_tip_hash_dead_letter_names_the_field(malformed_run: MalformedRun) -> None:
    """The reason names the field, as the native encoder's reasons do."""
    assert "block_hash" in malformed_run.letters()["node:block_tip"]["reason"]


# ------------------------------------------------------------------------------------
# Garbage on the connection.
# ------------------------------------------------------------------------------------


def test_garbage_on_the_connection_ends_the_session_and_the_bridge_recovers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """After ten events the node writes bytes that are no Cap'n Proto message onto the
    connection and closes it. The session ends with exact books, the bridge stays up,
    connects again, and attaches to a fresh node on the same socket afterwards."""
    socket = tmp_path / "node.sock"
    settings = ipc_settings(
        kafka_bootstrap, topic_prefix, socket, subscribe=["utxo"], poll_interval_s=0
    )
    first_record = tmp_path / "garbage.jsonl"
    with running_ipc_bridge(settings, tmp_path) as bridge:
        with IpcNode() as node:
            scenario = IpcScenario(
                streams=("utxo",), count=10, garbage_after=10, wait_start=True, linger=True
            )
            node.start(scenario, first_record, socket=socket)
            one = bridge.wait_for("attached")["session_id"]
            node.go()
            bridge.wait_for("session_ended", session=one)
            # The node lingers: the bridge connects to it again.
            two = bridge.wait_for("attached", session_not=one)["session_id"]
            garbage_report = node.stop()
        bridge.wait_for("session_ended", session=two)
        with IpcNode() as fresh:
            scenario = IpcScenario(streams=("utxo",), count=10, wait_start=True, linger=True)
            fresh.start(scenario, socket=socket)
            three = bridge.wait_for("attached", session_not=(one, two))["session_id"]
            fresh.go()
            bridge.wait_captured(three, UTXO, 10)
            fresh_report = fresh.stop()
        bridge.wait_for("session_ended", session=three)
        assert bridge.thread.is_alive(), "the garbage did not crash the bridge"
        assert "failed" not in [u["state"] for u in bridge.recorder.history]

    assert len({one, two, three}) == 3
    assert garbage_report.garbage_connections == 1
    first_sub = garbage_report.subscriptions[0]
    assert (first_sub.connection, first_sub.sent, first_sub.ended) == (1, 10, "connection_closed")
    assert any(line["kind"] == "garbage" for line in read_ipc_records(first_record))

    records = read_topics(kafka_bootstrap, topic_prefix)
    books = final_books(records)
    assert sum(fired(books, one).values()) == first_sub.sent == 10
    assert sum(fired(books, two).values()) == 0, "the script had ended"
    assert sum(fired(books, three).values()) == fresh_report.streams["utxo"].offered == 10
    check_utxo_session(records, one, 10)
    check_utxo_session(records, three, 10)
    assert not dead_letters(records)
    checked = verdicts(records)
    assert {c.key[1] for c in checked} == {one, two, three}
    assert all(c.ok for c in checked), checked
