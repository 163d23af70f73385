"""The real-node benchmarks, small: their figures come out and every tracer's books close.

They check that the commands run end to end against a real bitcoind and report what
they say they report, never how fast anything was: the machine is shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

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
