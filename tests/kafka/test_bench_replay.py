"""`tracebridge bench replay` end to end, small: its records replay whole and pass the audit."""

from __future__ import annotations

import pytest

from bridge.bench.replay import format_result, run_replay_bench

pytestmark = [pytest.mark.kafka]


def test_bench_replay_produces_replays_and_audits(kafka_bootstrap: str) -> None:
    result = run_replay_bench(kafka_bootstrap, 20_000, nodes=2, baseline=True, jsonl=False)
    assert result.records == 20_000
    assert result.audit_ok
    assert result.replay_s > 0
    assert result.replay_fastavro_s is not None
    table = format_result(result)
    assert "replay decode, seq order (C decoder)" in table
    assert "audit passed" in table
