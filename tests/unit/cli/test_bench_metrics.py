"""``tracebridge bench usdt|ipc|compare --metrics``: the ping flood without and with the
Prometheus endpoint, side by side (no node, no Kafka: the runs are faked; the scraper
is tried against a real in-process endpoint)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.bench import ping
from bridge.bench.ping import MetricsScraper, StageResult, format_table, run_rates
from bridge.cli import bench as bench_cli
from bridge.cli.main import main
from bridge.config import MetricsConfig
from bridge.metrics.server import MetricsServer
from tests.support.metrics import populated_metrics


def stage(rate: float, *, delivered: int = 1000, **changes: Any) -> StageResult:
    fields: dict[str, Any] = {
        "source": "usdt",
        "offered_eps": rate,
        "fired": delivered,
        "achieved_eps": 1000.0,
        "delivered": delivered,
        "delivered_eps": 1000.0,
        "lost": {},
        "bridge_cpu_s": 0.003,
        "receive_cpu_s": 0.001,
        "produce_cpu_s": 0.001,
        "settle_s": 0.1,
        "node_us_per_event": None,
        "node_us_per_event_untraced": None,
    }
    return StageResult(**{**fields, **changes})


class FakeRunner:
    source = "usdt"

    def bridge_args(self) -> list[str]:
        return []

    def bridge_env(self) -> dict[str, str]:
        return {"FROM_RUNNER": "1"}

    def traced(self, rate_eps: float, seconds: float, attached: Any) -> ping.NodeRun:
        raise AssertionError("not in a unit test")

    def untraced_us_per_event(self, rate_eps: float, seconds: float) -> float | None:
        return 0.5


@pytest.mark.parametrize("command", ["usdt", "ipc", "compare"])
def test_every_ping_command_takes_metrics(command: str) -> None:
    result = CliRunner().invoke(main, ["bench", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--metrics" in result.output


def test_metrics_runs_every_rate_twice_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run_rates(
        runner: Any, bootstrap: str, rates: Sequence[float], seconds: float, prefix: str,
        baseline: bool = True, settings_env: Mapping[str, str] | None = None,
        metrics: bool = False, headers: bool = True,
    ) -> list[StageResult]:  # fmt: skip
        calls.append(
            {"rates": list(rates), "prefix": prefix, "baseline": baseline, "metrics": metrics}
        )
        if not metrics:
            return [stage(rate) for rate in rates]
        # /metrics disagrees with the ledger at flat out: the CLI must say so.
        return [
            stage(rate, metrics=True, metrics_delivered=1000 - (rate == 0), bridge_cpu_s=0.004)
            for rate in rates
        ]

    monkeypatch.setattr(bench_cli, "run_rates", fake_run_rates)
    monkeypatch.setattr(bench_cli, "UsdtRunner", FakeRunner)
    monkeypatch.setattr(bench_cli, "kafka_target", lambda given: given)
    args = ["bench", "usdt", "--rates", "20000,0", "-b", "127.0.0.1:1", "--metrics"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output

    # A fresh bridge per row, in turns; which configuration goes first alternates.
    assert [(c["rates"], c["metrics"]) for c in calls] == [
        ([20000.0], False),
        ([20000.0], True),
        ([0.0], True),
        ([0.0], False),
    ]
    for call in calls:
        assert call["baseline"] == (not call["metrics"]), "the node's cost: measured once"
        if call["metrics"]:
            assert call["prefix"].endswith("-metrics"), "topics of its own"
    rows = [line.split("|")[1:4] for line in result.stdout.splitlines()[2:]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["usdt", "20,000", "1,000"],
        ["usdt +metrics", "20,000", "1,000"],
        ["usdt", "flat out", "1,000"],
        ["usdt +metrics", "flat out", "1,000"],
    ]
    cpu = [line.split("|")[7].strip() for line in result.stdout.splitlines()[2:]]
    assert cpu == ["3.00", "4.00", "3.00", "4.00"]
    assert "/metrics and the ledger disagree" in result.stderr

    monkeypatch.setattr(bench_cli, "run_rates", lambda *a, **k: [stage(0)])
    plain = CliRunner().invoke(main, ["bench", "usdt", "--rates", "0", "-b", "127.0.0.1:1"])
    assert plain.exit_code == 0, plain.output
    assert "+metrics" not in plain.stdout
    assert "disagree" not in plain.stderr


def test_run_rates_serves_scrapes_and_checks_metrics_per_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bridge gets metrics.port; each run's row says what /metrics counted for it
    (the counters are cumulative over the runs of one bridge)."""
    envs: list[dict[str, str]] = []

    class FakeBridge:
        def __init__(self, args: Any, env: dict[str, str], *rest: Any) -> None:
            envs.append(env)

        def wait_for(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {}

        def close(self) -> None:
            pass

    class FakeScraper:
        totals = iter([1000, 1900])
        started = stopped = False

        def __init__(self, port: int) -> None:
            self.port = port

        def start(self) -> None:
            FakeScraper.started = True

        def stop(self) -> None:
            FakeScraper.stopped = True

        def delivered(self) -> int:
            return next(self.totals)

    def fake_one_rate(bridge: Any, runner: Any, rate: float, *rest: Any) -> tuple[StageResult, str]:
        return stage(rate), f"session-{rate}"

    monkeypatch.setattr(ping, "BridgeProcess", FakeBridge)
    monkeypatch.setattr(ping, "MetricsScraper", FakeScraper)
    monkeypatch.setattr(ping, "_one_rate", fake_one_rate)
    rows = run_rates(FakeRunner(), "b:1", [1.0, 2.0], 0.1, "p", metrics=True)
    assert [r.metrics_delivered for r in rows] == [1000, 900]
    assert [r.metrics_agree() for r in rows] == [True, False]
    assert [r.label for r in rows] == ["usdt +metrics"] * 2
    assert FakeScraper.started
    assert FakeScraper.stopped
    (env,) = envs
    assert env["FROM_RUNNER"] == "1"
    assert int(env["TRACEBRIDGE_METRICS__PORT"]) > 0
    assert env["TRACEBRIDGE_METRICS__ADDRESS"] == "127.0.0.1"

    envs.clear()
    plain = run_rates(FakeRunner(), "b:1", [1.0], 0.1, "p")
    assert not any(k.startswith("TRACEBRIDGE_METRICS") for k in envs[0])
    assert [(r.metrics, r.metrics_delivered, r.metrics_agree()) for r in plain] == [
        (False, None, True)
    ]
    assert "| usdt |" in format_table(plain)


def test_the_scraper_reads_delivered_from_a_real_endpoint() -> None:
    server = MetricsServer(MetricsConfig(port=0, address="127.0.0.1"), populated_metrics())
    scraper = MetricsScraper(server.port, interval_s=0.01)
    try:
        scraper.start()
        wait_until(lambda: scraper.scrapes >= 3)
        assert scraper.delivered(["net:inbound_message"]) == 170  # 85 in each of 2 sessions
        assert scraper.delivered() == 170  # the ping streams by default
        assert scraper.delivered(["net:outbound_message"]) == 0
    finally:
        scraper.stop()
        server.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_headers_both_runs_every_rate_with_and_without_side_by_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 9's figure: headers on (the default) next to headers off, in one run."""
    calls: list[dict[str, Any]] = []

    def fake_run_rates(
        runner: Any, bootstrap: str, rates: Sequence[float], seconds: float, prefix: str,
        baseline: bool = True, settings_env: Mapping[str, str] | None = None,
        metrics: bool = False, headers: bool = True,
    ) -> list[StageResult]:  # fmt: skip
        calls.append({"rate": rates[0], "prefix": prefix, "baseline": baseline, "headers": headers})
        return [
            stage(rate, headers=headers, bridge_cpu_s=0.003 if headers else 0.002) for rate in rates
        ]

    monkeypatch.setattr(bench_cli, "run_rates", fake_run_rates)
    monkeypatch.setattr(bench_cli, "UsdtRunner", FakeRunner)
    monkeypatch.setattr(bench_cli, "kafka_target", lambda given: given)
    args = ["bench", "usdt", "--rates", "20000,0", "-b", "127.0.0.1:1", "--headers", "both"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [(c["rate"], c["headers"]) for c in calls] == [
        (20000.0, True),
        (20000.0, False),
        (0.0, False),
        (0.0, True),
    ]
    assert all(c["baseline"] == c["headers"] for c in calls), "the node's cost: once per rate"
    assert all(c["prefix"].endswith("-noheaders") != c["headers"] for c in calls)
    rows = [line.split("|") for line in result.stdout.splitlines()[2:]]
    assert [(row[1].strip(), row[7].strip()) for row in rows] == [
        ("usdt", "3.00"),
        ("usdt -headers", "2.00"),
        ("usdt", "3.00"),
        ("usdt -headers", "2.00"),
    ]
