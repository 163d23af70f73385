"""The real-node benchmarks, small: their figures come out and every tracer's books close.

They check that the commands run end to end against a real bitcoind and report what
they say they report, never how fast anything was: the machine is shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.bench.reindex import format_reindex_table, run_reindex
from bridge.bench.reindex_chain import FUNDING_BLOCKS, ChainSpec, ensure_chain
from bridge.cli.bench import bench_group
from bridge.realnode.binaries import CoreBinaries

pytestmark = [pytest.mark.realnode, pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]


def test_bench_realping_reports_every_condition(
    core_binaries: CoreBinaries, kafka_bootstrap: str, tmp_path: Path
) -> None:
    figures = tmp_path / "realping.json"
    result = CliRunner().invoke(
        bench_group,
        ["realping", "--rates", "2000,0", "--seconds", "1", "-b", kafka_bootstrap,
         "--json", str(figures)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| bridge | flat out |" in result.output
    rows = json.loads(figures.read_text())
    assert [(r["condition"], r["offered_pps"]) for r in rows] == [
        (condition, rate) for condition in ("none", "bridge", "perfbuf") for rate in (2000, 0)
    ]
    for row in rows:
        assert row["pongs"] == row["pings"] > 0, row
        assert row["rtt_p50_ms"] is not None
        assert row["node_us_per_ping"] is not None
        # Each pong is an inbound ping and an outbound pong; the handshake adds a few.
        assert row["expected"] >= 2 * row["pongs"]
        if row["condition"] == "none":
            assert row["fired"] is None
            continue
        assert row["consumer_us_per_event"] is not None
        # Every message the peer exchanged fired once, and is delivered or counted lost.
        assert row["fired"] == row["expected"], row
        assert row["delivered"] + sum(row["lost"].values()) == row["fired"], row
        assert all(count >= 0 for count in row["lost"].values()), row


def test_bench_reindex_traces_every_block(
    core_binaries: CoreBinaries, kafka_bootstrap: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A tiny chain, cached under this test's own cache dir (the binaries are resolved).
    monkeypatch.setenv("TRACEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    spec = ChainSpec(blocks=20, txs=40)
    chain = ensure_chain(core_binaries, spec, say=lambda line: None)
    assert chain.directory == spec.directory
    assert chain.height == FUNDING_BLOCKS + spec.blocks
    assert chain.transactions > spec.blocks * spec.txs // 2
    assert ensure_chain(core_binaries, spec, say=pytest.fail) == chain  # built once

    runs = run_reindex(core_binaries, chain, kafka_bootstrap, repeat=1, say=lambda line: None)
    assert [r.condition for r in runs] == ["none", "bridge"]
    for run in runs:
        assert run.wall_s > 0
        assert run.blocks == chain.height
    traced = runs[1]
    # Attached during the hold: every block connected was traced.
    assert traced.blocks_traced == chain.height
    assert traced.fired is not None
    assert traced.delivered is not None
    assert traced.fired > chain.transactions  # an add per output, a spend per input
    assert traced.delivered + sum(traced.lost.values()) == traced.fired
    table = format_reindex_table(chain, runs)
    assert f"{chain.height:,}/{chain.height:,}" in table
