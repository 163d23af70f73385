"""Records dropped for backpressure must not take the losses they reported with them.

A record's ``lost_before`` is the only place in the topic that says which seqs before it
were lost (in the kernel, say). When the producer's queue stays full the bridge drops
records it has already encoded (bridge-stage losses); those records' own lost_before
never reach the topic either. Found under a replicated cluster whose leader was killed
(tests/kafka/test_cluster_faults.py): the queue filled during the failover while the
ring overflowed, and the audit reported the kernel losses behind dropped records as
unexplained, though the ledger had counted every one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.emulator import PingStage, UsdtScenario
from bridge.replay.audit import read_audit
from tests.bpf.test_usdt_to_kafka import run_scenario

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]


def test_dropped_records_carry_their_reported_losses_forward(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A small ring under a ping flood loses in the kernel; a producer queue of 1000
    that holds records for a second is full at almost every drain, so whole drained
    batches, the first records of which report the kernel losses, are dropped. Every
    missing seq must still be reported right after its gap."""
    scenario = UsdtScenario(mode="ping", stages=(PingStage(rate=0, seconds=2.0),), wait_start=True)
    run_scenario(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        scenario,
        kafka={"queue_max_messages": 1000, "queue_full_timeout_ms": 0, "linger_ms": 1000},
        tracepoints=("net:*_message",),
        ring_buffer_kib={"net": 64},
        poll_interval_ms=50,
    )
    audit = read_audit(kafka_bootstrap, topic_prefix).judge(require_closed=True)
    assert audit.ok, [s.problems for s in audit.streams if s.problems]
    for stream in audit.streams:
        assert stream.lost["kernel"] > 0
        assert stream.lost["bridge"] > 0
        assert stream.gaps.unexplained == 0
        assert stream.gaps.missing == sum(stream.lost.values())
        # Placed, not merely balanced: every gap before the last record is reported by
        # the record right after it (only losses after the last record are the ledger's).
        *placed, _tail = stream.gaps.gaps
        assert {g.covered_by for g in placed} <= {"lost_before"}, stream.as_dict()
