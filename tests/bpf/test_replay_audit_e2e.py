"""The real bridge against the emulated node, then replay, audit and capture export.

Closes the loop on real data: what the bridge wrote from real uprobes (including real
kernel losses under overload) must pass the audit, replay in seq order, and export as
capture files an independent reader parses.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bridge.codec.single_object import committed_schemas
from bridge.emulator import PingStage, UsdtScenario
from bridge.export.capture import Truncated, TruncatedCaptureError, export_capture
from bridge.replay import ReadStats, read_events
from bridge.replay.audit import read_audit
from bridge.replay.selection import event_topics
from tests.bpf.test_usdt_to_kafka import PAYLOAD_CAP, run_scenario
from tests.support.capture_reader import read_capture_dir

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]


def test_real_run_audits_replays_and_exports(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    scenario = UsdtScenario(count=40, values="edge", wait_start=True)
    report, _ = run_scenario(
        kafka_bootstrap, topic_prefix, tmp_path, scenario, payload_capture_bytes=PAYLOAD_CAP
    )
    audit = read_audit(kafka_bootstrap, topic_prefix).judge(require_closed=True)
    assert audit.ok, [s.problems for s in audit.streams if s.problems]
    assert all(s.closed and s.gaps.gaps == [] for s in audit.streams)

    stats = ReadStats()
    topics = event_topics(topic_prefix, committed_schemas())
    events = list(read_events(kafka_bootstrap, topics, stats=stats))
    per_stream = Counter(e.stream for e in events)
    assert per_stream == Counter({s: n for s, n in report.fired.items() if n})
    for stream in per_stream:
        seqs = [e.seq for e in events if e.stream == stream]
        assert seqs == list(range(1, len(seqs) + 1))
    assert stats.undecodable == 0

    messages = [e for e in events if e.stream.endswith("_message")]
    truncated = sum(1 for e in messages if e.fields["msg_truncated"])
    assert truncated > 0  # edge payloads reach 4097 B; 256 are captured
    net = [f"{topic_prefix}.net"]
    with pytest.raises(TruncatedCaptureError):
        export_capture(kafka_bootstrap, net, tmp_path / "refused")
    summary = export_capture(kafka_bootstrap, net, tmp_path / "cap", policy=Truncated.KEEP)
    assert (summary.messages, summary.truncated) == (len(messages), truncated)
    files = read_capture_dir(tmp_path / "cap" / "emulated-node")
    assert sum(len(m) for m in files.values()) == len(messages)


def test_real_kernel_losses_pass_the_audit(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A one-page ring under a ping flood loses most events in the kernel; every gap
    must be covered by a lost_before (or the ledger, after the last record)."""
    scenario = UsdtScenario(mode="ping", stages=(PingStage(rate=0, seconds=1.0),), wait_start=True)
    run_scenario(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        scenario,
        tracepoints=("net:*_message",),
        ring_buffer_kib={"net": 4},
        poll_interval_ms=200,
    )
    audit = read_audit(kafka_bootstrap, topic_prefix).judge(require_closed=True)
    assert audit.ok, [s.problems for s in audit.streams if s.problems]
    streams = {s.key[2]: s for s in audit.streams}
    inbound = streams["net:inbound_message"]
    assert inbound.lost["kernel"] > 0
    assert inbound.gaps.unexplained == 0
    assert inbound.gaps.missing == sum(inbound.lost.values())
