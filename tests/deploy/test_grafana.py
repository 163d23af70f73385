"""The Grafana dashboard, its provisioning and the Prometheus scrape config.

No Grafana or Prometheus runs here, so the files are checked against what those tools
require and against each other: the dashboard's structure and panels, the datasource
its panels name (the one provisioning creates), the mounts and the scrape target in
docker-compose.yml, and, above all, that every metric its PromQL queries is one the
bridge's endpoint really serves (scraped over HTTP from a real MetricsServer).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.config import MetricsConfig
from bridge.metrics.server import MetricsServer
from bridge.resources import REPO_ROOT
from tests.support.metrics import populated_metrics, samples, scrape_text

yaml = pytest.importorskip("yaml", reason="PyYAML comes with Debian's docker-compose")

GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tracebridge.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "tracebridge.yml"
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"

PANEL_TYPES = {"timeseries", "state-timeline", "stat", "gauge", "table", "bargauge"}
# PromQL words that are not metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "by", "without", "rate", "irate", "increase",
    "histogram_quantile", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "topk", "bottomk", "clamp_min", "clamp_max", "delta",
    "label_values", "abs", "time", "vector", "scalar", "changes", "resets", "inf",
}  # fmt: skip


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and template variable queries."""
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, grouping labels) of one PromQL expression."""
    grouping = set()
    values_of = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", expr)
    if values_of:  # a template variable: the label's values on the inner selector
        expr = values_of.group(1)
        grouping.add(values_of.group(2))
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        grouping |= {label.strip() for label in clause.split(",") if label.strip()}
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # grouping
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", "", bare)  # matchers, ranges, variables
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return {w for w in words if w not in PROMQL_WORDS}, grouping


@pytest.fixture(scope="module")
def served() -> dict[str, set[str]]:
    """Sample name -> the label names it carries, as the real endpoint serves them."""
    server = MetricsServer(MetricsConfig(port=0, address="127.0.0.1"), populated_metrics())
    try:
        text = scrape_text(server.port)
    finally:
        server.stop()
    out: dict[str, set[str]] = {}
    for sample in samples(text):
        out.setdefault(sample.name, set()).update(sample.labels)
    return out


def test_the_metric_name_parser_finds_names_and_nothing_else() -> None:
    names, grouping = metric_names(
        'histogram_quantile(0.99, sum by (node, le) (rate(a_bucket{node=~"$node"}'
        "[$__rate_interval]))) / on (node) b_total > 0"
    )
    assert names == {"a_bucket", "b_total"}
    assert grouping == {"node", "le"}
    assert metric_names('label_values(c_total{node=~"$node"}, stream)') == ({"c_total"}, {"stream"})


def test_every_queried_metric_is_served_with_the_labels_queried(
    served: dict[str, set[str]],
) -> None:
    exprs = queries(dashboard())
    assert exprs
    for expr in exprs:
        names, grouping = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            assert name in served, f"{name} (in {expr!r}) is not served by the endpoint"
            assert grouping <= served[name], (expr, grouping - served[name])
        matched = set(re.findall(r"([A-Za-z_]\w*)\s*=~?", " ".join(re.findall(r"\{[^}]*\}", expr))))
        for name in names:
            assert matched <= served[name], (expr, matched - served[name])


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    board = dashboard()
    exprs = " ".join(queries(board))
    for metric in (
        "tracebridge_events_fired_total",  # rates
        "tracebridge_events_delivered_total",
        "tracebridge_events_lost_total",  # loss by stage
        "tracebridge_dead_letters_total",
        "tracebridge_ring_pending_bytes",  # lag and ring fill
        "tracebridge_producer_queue_messages",
        "tracebridge_delivery_latency_seconds_bucket",  # latency
        "tracebridge_session_attached",  # attach state
        "tracebridge_last_attach_delay_seconds",
        "tracebridge_ipc_reconnects_total",
    ):
        assert metric in exprs, metric
    assert "stage" in exprs  # losses are broken down by stage
    assert {v["name"] for v in board["templating"]["list"]} == {"node", "stream"}


def test_dashboard_structure_and_layout() -> None:
    board = dashboard()
    assert board["uid"] == "tracebridge-fleet"
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    panels = board["panels"]
    assert len(panels) >= 8
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["title"]
        assert panel["description"]
        grid = panel["gridPos"]
        assert grid["w"] > 0
        assert grid["h"] > 0
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids
        assert len(set(ref_ids)) == len(ref_ids)
        for target in panel["targets"]:
            assert target["expr"].strip()


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())
    assert provisioned["apiVersion"] == 1
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    board = dashboard()
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == source["uid"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_compose_provisions_prometheus_and_grafana() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    def mounts(service: str) -> dict[str, Path]:
        out = {}
        for volume in services[service]["volumes"]:
            source, target, *_ = volume.split(":")
            out[target] = Path(source)
        return out

    # Prometheus scrapes the bridge's endpoint at the port the bridge is given.
    prometheus_mounts = mounts("prometheus")
    config_file = prometheus_mounts["/etc/prometheus/prometheus.yml"]
    assert config_file.resolve() == PROMETHEUS
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    targets = [t for job in scrape for c in job["static_configs"] for t in c["targets"]]
    port = services["bridge"]["environment"]["TRACEBRIDGE_METRICS__PORT"]
    assert targets == [f"bridge:{port}"]
    # Grafana gets the provisioning directory and the dashboards where the provider looks.
    grafana_mounts = mounts("grafana")
    assert grafana_mounts["/etc/grafana/provisioning"].resolve() == GRAFANA / "provisioning"
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert grafana_mounts[provider["options"]["path"]].resolve() == DASHBOARD.parent
    # The datasource URL is the prometheus service, on the port it listens on inside.
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert any(str(p["target"]) == "9090" for p in services["prometheus"]["ports"])
