"""``tracebridge audit --workers N`` reaches one process's verdict, on a real broker.

The topics have several partitions, so the workers' shares really differ: every
(topic, partition) is its own worker's, which puts each stream's records in one worker
and its ledger in another. The evidence mixes what must pass with what must fail
(tests/support/forge.py writes exactly what a bridge writes, except where it forges):
kernel, producer and tail losses; periodic and SESSION_END heartbeats of one session in
different ledger partitions; a gap nobody reported; a duplicate written into another
partition; a stream split over two partitions whose gap is reported across the split; a
session ended twice into both ledger partitions; an open stream; a record no schema
decodes. The whole report, problem texts and numbers included, must be equal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli.audit import audit_command
from bridge.codec.single_object import committed_schemas
from bridge.replay.audit import audit_topics, read_audit
from bridge.replay.audit_workers import plan, read_audit_shared, share_out
from tests.support.forge import HEARTBEAT, Forge, ForgedSession

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 2
ADDED, REMOVED, BLOCK = "mempool:added", "mempool:removed", "validation:block_connected"


def forge_fleet(forge: Forge) -> None:
    prefix = forge.prefix
    # Event times of now: the broker deletes records older than its retention (7 days,
    # judged by the message timestamp) at its next check, and the test must not race it.
    now = time.time_ns() - 1_000_000_000  # a forged session's clock starts at 1 s

    def session(node: str) -> ForgedSession:
        return forge.session(node, wall_offset_ns=now)

    clean = session("node-a")
    for _ in range(50):
        clean.event(ADDED)
    clean.event(ADDED, lost_before=3)
    clean.event(ADDED, produce=False)  # a producer loss
    for _ in range(40):
        clean.event(ADDED)
    clean.lose(ADDED, 2)  # tail losses, in the ledger only
    for _ in range(10):
        clean.event(REMOVED)
        clean.event(BLOCK)
    # its periodic heartbeat in one ledger partition, its SESSION_END in the other
    clean.heartbeat(final=False, partition=0)
    clean.heartbeat(final=True, partition=1)

    unreported = session("node-b")
    for _ in range(20):
        unreported.event(ADDED)
    unreported.lose(ADDED, 2)  # seqs 21-22 vanish and no record says so
    for _ in range(30):
        unreported.event(ADDED)
    unreported.heartbeat()

    doubled = session("node-c")
    for _ in range(10):
        doubled.event(BLOCK)
    for partition in range(PARTITIONS):  # seq 5 again, in either partition
        forge.produce(f"{prefix}.validation", doubled.values[4], b"node-c", partition=partition)
    ended = doubled.heartbeat()
    for partition in range(PARTITIONS):  # the same SESSION_END in both ledger partitions
        value = forge.store.encode(HEARTBEAT, ended)
        forge.produce(f"{prefix}.bridge", value, b"node-c", partition=partition)

    split = session("node-d")
    for i in range(60):  # the second half in the other partition, a loss reported across
        split.event(ADDED, partition=0 if i < 30 else 1, lost_before=2 if i == 30 else 0)
    split.heartbeat(final=False, partition=1)  # the other way round from node-a's
    split.heartbeat(final=True, partition=0)

    still_running = session("node-e")
    for _ in range(12):
        still_running.event(REMOVED)
    still_running.heartbeat(final=False)
    still_running.event(REMOVED, seq=20)  # missing seqs, but the books are still open

    forge.produce(f"{prefix}.mempool", b"\xc3\x01not a record", b"node-x", partition=1)
    forge.flush()


def test_workers_reach_the_single_process_verdict(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix, partitions=PARTITIONS)
    forge_fleet(forge)

    one = read_audit(kafka_bootstrap, topic_prefix).judge().as_dict()
    status = {(s["node_id"], s["stream"]): s["status"] for s in one["streams"]}
    assert status == {
        ("node-a", ADDED): "ok",
        ("node-a", REMOVED): "ok",
        ("node-a", BLOCK): "ok",
        ("node-b", ADDED): "FAIL",
        ("node-c", BLOCK): "FAIL",
        ("node-d", ADDED): "ok",
        ("node-e", REMOVED): "open",
    }
    assert one["undecodable"] == 1
    doubled = next(s for s in one["streams"] if s["node_id"] == "node-c")
    assert (doubled["duplicates"], doubled["gaps"]) == (2, [])

    spans = plan(kafka_bootstrap, audit_topics(topic_prefix, committed_schemas()))
    used = [s for s in spans if s.end > s.start]
    # mempool, validation and the ledger, each with records in both partitions
    assert len(used) == 3 * PARTITIONS
    assert all(len(share) == 1 for share in share_out(used, len(used)))
    for workers in (2, len(used)):
        shared = read_audit_shared(kafka_bootstrap, topic_prefix, workers=workers)
        assert shared.judge().as_dict() == one, workers
    selected = read_audit(kafka_bootstrap, topic_prefix, nodes=["node-b", "node-d"])
    shared = read_audit_shared(
        kafka_bootstrap, topic_prefix, workers=len(used), nodes=["node-b", "node-d"]
    )
    strict = {"require_closed": True}
    assert shared.judge(**strict).as_dict() == selected.judge(**strict).as_dict()

    runner = CliRunner()
    reports = []
    for count in ("1", "3"):
        out = tmp_path / f"audit-{count}.json"
        result = runner.invoke(
            audit_command,
            [
                "-b",
                kafka_bootstrap,
                "--prefix",
                topic_prefix,
                "--workers",
                count,
                "--json",
                str(out),
            ],
        )
        assert result.exit_code == 1, result.output
        assert "FAIL node-b mempool:added" in result.output
        reports.append(json.loads(out.read_text()))
    assert reports[0] == reports[1] == json.loads(json.dumps(one))
