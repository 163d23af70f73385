"""Emulated node → real BPF → bridge → real Kafka → decoded back, checked exactly.

Every test attaches real uprobes to a real process with semaphore-gated USDT probes
and reads the records back from a real broker. The emulator waits (--wait-start) until
the bridge is attached, so its fired counts are exactly what the probes saw.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator import (
    EmulatorReport,
    PingStage,
    UsdtNode,
    UsdtScenario,
    build_usdt_node,
    read_records,
)
from bridge.events.catalog import EVENTS
from tests.support.pipeline import (
    events_by_stream,
    expected_fields,
    final_books,
    read_topics,
    running_bridge,
    settings_for,
    verdicts,
)

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

PAYLOAD_CAP = 256  # below the emulator's edge payloads (up to 4097 B): truncation is exercised


def run_scenario(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    scenario: UsdtScenario,
    *,
    wallet: bool = True,
    kafka: dict[str, Any] | None = None,
    **usdt: Any,
) -> tuple[EmulatorReport, Path]:
    """One node run, traced from before its first probe to after its exit."""
    record = tmp_path / "fired.jsonl"
    with UsdtNode(build_usdt_node(wallet=wallet)) as node:
        node.start(scenario, record=record)
        settings = settings_for(
            kafka_bootstrap, topic_prefix, kafka, pid=node.pid, reattach=False, **usdt
        )
        with running_bridge(settings, tmp_path) as bridge:
            bridge.wait_for("attached")
            node.go()
            report = node.wait(timeout=120)
            bridge.wait_for("stopped", timeout=120)
    return report, record


def test_every_tracepoint_arrives_with_the_exact_values_fired(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = UsdtScenario(count=40, values="edge", wait_start=True)
    report, record = run_scenario(
        kafka_bootstrap, topic_prefix, tmp_path, scenario, payload_capture_bytes=PAYLOAD_CAP
    )
    records = read_topics(kafka_bootstrap, topic_prefix)
    received = events_by_stream(records)
    fired: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for event in read_records(record):
        fired[event.tp].append(event.args)

    assert set(received) == {spec.name for spec in EVENTS}
    for consumed in records:
        assert consumed.schema is not None
        assert consumed.headers == {
            "stability": consumed.schema.stability.encode(),
            "schema_fp": consumed.schema.fingerprint.hex().encode(),
            "source": b"usdt",
            "node": b"emulated-node",
        }
    for spec in EVENTS:
        sent, got = fired[spec.name], received[spec.name]
        assert len(sent) == len(got) == report.fired[spec.name] == 40
        for seq, (args, value) in enumerate(zip(sent, got, strict=True), start=1):
            assert value["envelope"]["seq"] == seq
            assert value["envelope"]["lost_before"] == 0
            fields = {k: v for k, v in value.items() if k != "envelope"}
            assert fields == expected_fields(spec.name, args, PAYLOAD_CAP), (spec.name, seq)

    books = final_books(records)
    for verdict in verdicts(records):
        assert verdict.ok, verdict
        assert verdict.lost == 0
        stream = verdict.key[2]
        assert books[(verdict.key[1], stream)]["fired"] == report.fired[stream]


def test_event_headers_can_be_left_off_without_losing_anything(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """kafka.event_headers = false: event records carry no headers (they cost bridge CPU
    per record), the bridge's own records still do, and the books still prove delivery."""
    scenario = UsdtScenario(count=5, tracepoints=("mempool:*",), wait_start=True)
    report, _ = run_scenario(
        kafka_bootstrap, topic_prefix, tmp_path, scenario, kafka={"event_headers": False}
    )
    records = read_topics(kafka_bootstrap, topic_prefix)
    events = [r for r in records if r.topic.endswith(".mempool")]
    assert len(events) == sum(report.fired.values()) == 20
    assert all(r.headers == {} for r in events)
    bridge_records = [r for r in records if r.topic.endswith(".bridge")]
    assert bridge_records
    assert all(r.headers["node"] == b"emulated-node" for r in bridge_records)
    for verdict in verdicts(records):
        assert verdict.ok, verdict


def test_overload_loses_events_but_counts_every_one(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A one-page ring drained every 200 ms cannot keep up with a flat-out ping flood:
    most events are lost in the kernel, and every loss is accounted for exactly."""
    scenario = UsdtScenario(mode="ping", stages=(PingStage(rate=0, seconds=1.0),), wait_start=True)
    report, _ = run_scenario(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        scenario,
        tracepoints=("net:*_message",),
        ring_buffer_kib={"net": 4},
        poll_interval_ms=200,
    )
    records = read_topics(kafka_bootstrap, topic_prefix)
    books = final_books(records)
    received = events_by_stream(records)
    for stream in ("net:inbound_message", "net:outbound_message"):
        (book,) = [b for (_, s), b in books.items() if s == stream]
        delivered = len(received[stream])
        assert book["fired"] == report.fired[stream] > 10_000
        assert book["lost"]["kernel"] > 0
        assert delivered + sum(book["lost"].values()) == report.fired[stream]
        assert delivered == book["acked"]
        seqs = [v["envelope"]["seq"] for v in received[stream]]
        tail = report.fired[stream] - max(seqs)  # lost after the last record: in no lost_before
        assert sum(v["envelope"]["lost_before"] for v in received[stream]) + tail == sum(
            book["lost"].values()
        )
    for verdict in verdicts(records):
        assert verdict.ok, verdict


def test_missing_tracepoints_are_skipped_with_one_warning(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    report, _ = run_scenario(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        UsdtScenario(count=5, wait_start=True),
        wallet=False,
    )
    warned = [r.getMessage() for r in caplog.records if "is not in" in r.getMessage()]
    assert sorted(w.split()[1] for w in warned) == sorted(
        spec.name for spec in EVENTS if spec.subsystem == "coin_selection"
    )
    records = read_topics(kafka_bootstrap, topic_prefix)
    received = events_by_stream(records)
    assert set(received) == {spec.name for spec in EVENTS if spec.subsystem != "coin_selection"}
    assert all(len(received[s]) == report.fired[s] == 5 for s in received)
    assert all(v.ok for v in verdicts(records))


def test_malformed_probe_data_goes_to_the_dead_letter_topic_and_is_counted(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    report, record = run_scenario(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        UsdtScenario(count=20, malformed=True, wait_start=True),
    )
    records = read_topics(kafka_bootstrap, topic_prefix)
    dead = [r.value for r in records if r.topic.endswith(".deadletter") and r.value]
    invalid: dict[str, int] = defaultdict(int)
    for event in read_records(record):
        if any(isinstance(arg, dict) for arg in event.raw):  # {"hex": ...}: not UTF-8
            invalid[event.tp] += 1
    assert dead, "the malformed run produced no dead letters"
    assert sum(invalid.values()) == len(dead)
    for letter in dead:
        assert letter["reason"].endswith("not valid UTF-8")
        assert letter["stream"] in invalid
        assert letter["raw"]
    books = final_books(records)
    received = events_by_stream(records)
    for (_, stream), book in books.items():
        assert book["dead_lettered"] == invalid.get(stream, 0)
        assert book["lost"]["bridge"] == invalid.get(stream, 0)
        assert len(received[stream]) + book["dead_lettered"] == report.fired[stream]
    assert all(v.ok for v in verdicts(records))


def test_node_restart_starts_a_new_session_and_both_close_exactly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # A private copy: in --binary mode the bridge traces any process running the binary,
    # and another test (or developer) may be running the shared cached build.
    binary = tmp_path / "bitcoind"
    shutil.copy2(build_usdt_node(), binary)
    settings = settings_for(kafka_bootstrap, topic_prefix, binary=binary)
    reports: list[EmulatorReport] = []
    sessions: list[str] = []
    with running_bridge(settings, tmp_path) as bridge:
        for run in range(2):
            with UsdtNode(binary) as node:
                node.start(UsdtScenario(count=25, wait_start=True))
                status = bridge.wait_for("attached", session_not=sessions[-1] if sessions else None)
                assert status["node_pid"] == node.pid
                sessions.append(status["session_id"])
                node.go()
                reports.append(node.wait(timeout=60))
            bridge.wait_for("session_ended", timeout=60)
            assert run == len(sessions) - 1
    assert len(set(sessions)) == 2
    records = read_topics(kafka_bootstrap, topic_prefix)
    books = final_books(records)
    for session, report in zip(sessions, reports, strict=True):
        for spec in EVENTS:
            assert books[(session, spec.name)]["fired"] == report.fired[spec.name] == 25
    checked = verdicts(records)
    assert {v.key[1] for v in checked} == set(sessions)
    assert all(v.ok for v in checked)
