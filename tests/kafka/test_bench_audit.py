"""`tracebridge bench audit` end to end, small: records written through the bridge's own
encoder and producer decode as a bridge's, their books balance, and the audit reaches
one verdict with any number of workers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bridge.bench.audit import format_audit_bench, produce_fleet, run_audit_bench
from bridge.bench.fleet_bench import delete_topics
from bridge.cli.bench import bench_group
from bridge.consume import TopicReader
from bridge.replay.audit import read_audit
from bridge.sinks.kafka.topics import all_topics

pytestmark = [pytest.mark.kafka]


def test_produced_records_are_a_bridges_and_their_books_balance(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    books = produce_fleet(kafka_bootstrap, topic_prefix, 20_001, 2, 2, loss_every=500)
    assert [b.node for b in books] == ["bench-node-1", "bench-node-2"]
    report = read_audit(kafka_bootstrap, topic_prefix).judge(require_closed=True)
    assert report.ok, report.as_dict()
    for book in books:
        mine = {s.key[2]: s for s in report.streams if s.key[0] == book.node}
        assert set(mine) == set(book.fired)
        for stream, fired in book.fired.items():
            audited = mine[stream]
            assert audited.gaps.ledger is not None
            assert audited.gaps.ledger.fired == fired
            assert audited.gaps.delivered == book.delivered[stream]
            assert audited.lost["kernel"] == book.kernel[stream]
        assert sum(book.kernel.values()) >= 10  # losses, each reported in a lost_before
    assert sum(s.gaps.lost_before_total for s in report.streams) == sum(
        sum(b.kernel.values()) for b in books
    )
    with TopicReader(kafka_bootstrap, all_topics(topic_prefix)) as reader:
        for record in reader.records():
            assert record.value is not None, record.error
            node = record.value.get("envelope", record.value)["node_id"]
            assert record.key == node.encode() == record.headers["node"]


def test_audit_bench_times_each_worker_count_with_one_verdict(kafka_bootstrap: str) -> None:
    result = run_audit_bench(kafka_bootstrap, 30_000, nodes=3, partitions=2, workers=[1, 2])
    assert result.ok
    assert [r.workers for r in result.runs] == [1, 2]
    assert all(r.records == 30_000 and r.same_verdict for r in result.runs)
    table = format_audit_bench(result)
    assert "| 2 |" in table

    runner = CliRunner()
    kept = runner.invoke(
        bench_group,
        ["audit", "-b", kafka_bootstrap, "--prefix", result.prefix, "--workers", "3"],
    )
    assert kept.exit_code == 0, kept.output
    assert "| 3 |" in kept.output
    delete_topics(kafka_bootstrap, result.prefix)
