"""tracebridge audit against a real broker: clean books pass; forged losses are caught.

Records are produced with the real native encoder and the committed heartbeat schema
(tests/support/forge.py), so the topics hold exactly what a bridge writes, except where
a test forges a gap, a duplicate, or deletes records.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from bridge.cli.audit import audit_command
from bridge.replay.audit import AuditReport, StreamAudit, read_audit
from tests.support.forge import Forge

pytestmark = [pytest.mark.kafka]

ADDED, REMOVED, BLOCK = "mempool:added", "mempool:removed", "validation:block_connected"


def audit(bootstrap: str, prefix: str, *, require_closed: bool = False) -> AuditReport:
    return read_audit(bootstrap, prefix).judge(require_closed=require_closed)


def by_stream(report: AuditReport) -> dict[str, list[StreamAudit]]:
    out: dict[str, list[StreamAudit]] = {}
    for stream in report.streams:
        out.setdefault(stream.key[2], []).append(stream)
    return out


def clean_session(forge: Forge, node: str = "node-a") -> None:
    """Kernel losses in lost_before, a producer loss, tail losses: all accounted for."""
    session = forge.session(node)
    for _ in range(50):
        session.event(ADDED)
    session.event(ADDED, lost_before=3)
    session.event(ADDED, produce=False)  # a producer loss: in the ledger only
    for _ in range(40):
        session.event(ADDED)
    session.lose(ADDED, 2)  # after the last record: in the ledger only
    for _ in range(10):
        session.event(REMOVED)
        session.event(BLOCK)
    session.heartbeat(final=False)
    session.heartbeat(final=True)


def test_clean_books_pass(kafka_bootstrap: str, topic_prefix: str) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    clean_session(forge, "node-a")
    clean_session(forge, "node-b")
    forge.flush()
    report = audit(kafka_bootstrap, topic_prefix)
    assert report.ok, report.as_dict()
    added = by_stream(report)[ADDED][0]
    assert added.status == "ok"
    assert added.gaps.ledger is not None
    assert (added.gaps.delivered, added.gaps.ledger.fired) == (91, 97)
    assert [g.covered_by for g in added.gaps.gaps] == ["lost_before", "producer", "ledger"]
    assert len(report.streams) == 6

    result = CliRunner().invoke(audit_command, ["-b", kafka_bootstrap, "--prefix", topic_prefix])
    assert result.exit_code == 0, result.output
    assert "audit OK" in result.output
    assert "node-a" in result.output
    assert "mempool:added" in result.output


def test_forged_gap_with_balanced_totals_is_caught(kafka_bootstrap: str, topic_prefix: str) -> None:
    """delivered + lost == fired holds, but no lost_before reports the gap: the books
    were made to balance, and the audit still refuses them."""
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(20):
        session.event(ADDED)
    session.lose(ADDED, 2)  # seqs 21-22 vanish, and the next record does not say so
    for _ in range(60):
        session.event(ADDED)
    session.heartbeat()
    forge.flush()

    report = audit(kafka_bootstrap, topic_prefix)
    assert not report.ok
    (stream,) = report.streams
    assert stream.status == "FAIL"
    (gap,) = stream.gaps.gaps
    assert (gap.first, gap.last, gap.unexplained) == (21, 22, 2)
    assert "2 missing seq(s) not accounted for" in stream.problems[0]

    result = CliRunner().invoke(audit_command, ["-b", kafka_bootstrap, "--prefix", topic_prefix])
    assert result.exit_code == 1
    assert "FAIL node-a mempool:added" in result.output


def test_missing_records_the_ledger_does_not_know_are_caught(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(10):
        session.event(ADDED)
    session.event(ADDED, seq=15)  # a forged jump: 11-14 missing, nobody counted them
    session.heartbeat(overrides={ADDED: {"fired": 15}})
    forge.flush()
    (stream,) = audit(kafka_bootstrap, topic_prefix).streams
    assert stream.status == "FAIL"
    assert stream.gaps.unexplained == 4


def test_duplicate_is_caught(kafka_bootstrap: str, topic_prefix: str) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(10):
        session.event(ADDED)
    forge.produce(f"{topic_prefix}.mempool", session.values[4], b"node-a")  # seq 5 again
    session.heartbeat()
    forge.flush()
    (stream,) = audit(kafka_bootstrap, topic_prefix).streams
    assert stream.status == "FAIL"
    assert (stream.gaps.duplicates, stream.gaps.duplicate_seqs) == (1, [5])


def test_deleted_records_are_caught(kafka_bootstrap: str, topic_prefix: str) -> None:
    """Records removed from the topic (retention, delete_records) after the ledger said
    they were delivered: the seqs are gone and nothing accounts for them."""
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(30):
        session.event(ADDED)
    session.heartbeat()
    forge.flush()
    assert audit(kafka_bootstrap, topic_prefix).ok

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.delete_records([TopicPartition(f"{topic_prefix}.mempool", 0, 12)])
    for future in futures.values():
        future.result()
    (stream,) = audit(kafka_bootstrap, topic_prefix).streams
    assert stream.status == "FAIL"
    (gap,) = stream.gaps.gaps
    assert (gap.first, gap.last, gap.unexplained) == (1, 12, 12)


def test_open_stream_is_reported_and_fails_only_when_asked(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(10):
        session.event(ADDED)
    session.heartbeat(final=False)
    for _ in range(5):
        session.event(ADDED)  # the bridge is still running: no SESSION_END yet
    forge.flush()
    report = audit(kafka_bootstrap, topic_prefix)
    assert report.ok
    assert [s.status for s in report.streams] == ["open"]
    assert not audit(kafka_bootstrap, topic_prefix, require_closed=True).ok

    runner = CliRunner()
    args = ["-b", kafka_bootstrap, "--prefix", topic_prefix]
    assert runner.invoke(audit_command, args).exit_code == 0
    assert runner.invoke(audit_command, [*args, "--require-closed"]).exit_code == 1


def test_neighbour_placement_of_a_kernel_loss_is_accepted(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Two CPUs: seq 11's reserve failed, and seq 10 (committed later) reported it."""
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(9):
        session.event(ADDED)
    session.event(ADDED, lost_before=1, seq=10)  # reports the loss of 11, ahead of it
    session.event(ADDED, seq=12)
    session.heartbeat()
    forge.flush()
    (stream,) = audit(kafka_bootstrap, topic_prefix).streams
    assert stream.status == "ok", stream.problems
    (gap,) = stream.gaps.gaps
    assert (gap.first, gap.covered_by) == (11, "neighbour")


def test_kernel_losses_reported_by_a_record_lost_at_the_producer_are_accepted(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Seq 11-13 were lost in the ring; seq 14 reported them and then timed out at the
    producer, so no record in the topic says why 11-14 are missing. The ledger does:
    three kernel losses and one producer loss, and the audit places them."""
    forge = Forge(kafka_bootstrap, topic_prefix)
    session = forge.session("node-a")
    for _ in range(10):
        session.event(ADDED)
    session.event(ADDED, lost_before=3, produce=False)
    for _ in range(5):
        session.event(ADDED)
    session.heartbeat()
    forge.flush()
    (stream,) = audit(kafka_bootstrap, topic_prefix).streams
    assert stream.status == "ok", stream.problems
    (gap,) = stream.gaps.gaps
    assert (gap.first, gap.last, gap.producer, gap.ledger) == (11, 14, 1, 3)
