"""The /metrics endpoint over real HTTP, parsed by prometheus_client's own parser."""

from __future__ import annotations

import re
import socket

import pytest

from bridge.config import MetricsConfig
from bridge.errors import ConfigError
from bridge.metrics.server import MetricsServer
from bridge.metrics.state import BridgeMetrics
from tests.support.metrics import populated_metrics, samples, scrape_text, value

LOCAL = MetricsConfig(port=0, address="127.0.0.1")


def served(metrics: BridgeMetrics) -> str:
    """One scrape of ``metrics`` over HTTP."""
    server = MetricsServer(LOCAL, metrics)
    try:
        return scrape_text(server.port)
    finally:
        server.stop()


@pytest.fixture
def text() -> str:
    return served(populated_metrics())


def test_counters_sum_the_books_of_every_session(text: str) -> None:
    stream = {"node": "n1", "source": "usdt", "stream": "net:inbound_message"}
    assert value(text, "tracebridge_events_fired_total", **stream) == 200
    assert value(text, "tracebridge_events_delivered_total", **stream) == 170
    assert value(text, "tracebridge_events_captured_total", **stream) == 180
    assert value(text, "tracebridge_events_produced_total", **stream) == 176
    assert value(text, "tracebridge_dead_letters_total", **stream) == 4
    for stage, lost in {"kernel": 20, "bridge": 4, "producer": 2, "node": 0}.items():
        assert value(text, "tracebridge_events_lost_total", stage=stage, **stream) == lost
    assert value(text, "tracebridge_events_in_flight", **stream) == 100 - 85 - 13


def test_sessions_reconnects_attach_state_and_delays(text: str) -> None:
    assert value(text, "tracebridge_sessions_total", source="usdt") == 3
    assert value(text, "tracebridge_sessions_total", source="ipc") == 2
    assert value(text, "tracebridge_ipc_reconnects_total", node="n1") == 1
    assert value(text, "tracebridge_session_attached", source="usdt") == 1
    assert value(text, "tracebridge_session_attached", source="ipc") == 0
    assert value(text, "tracebridge_attach_delay_seconds_count", source="usdt") == 3
    assert value(text, "tracebridge_attach_delay_seconds_bucket", source="usdt", le="0.1") == 1
    assert value(text, "tracebridge_attach_delay_seconds_bucket", source="usdt", le="0.25") == 3
    assert value(text, "tracebridge_last_attach_delay_seconds", source="usdt") == pytest.approx(
        0.09
    )


def test_gauges_are_sampled_at_scrape_time(text: str) -> None:
    assert value(text, "tracebridge_producer_queue_messages", node="n1") == 12
    assert value(text, "tracebridge_ring_pending_bytes", ring="net") == 1024
    assert value(text, "tracebridge_ring_size_bytes", ring="net") == 16 * 1024 * 1024
    assert value(text, "tracebridge_delivery_latency_seconds_count", node="n1") == 1
    assert value(text, "tracebridge_delivery_latency_seconds_bucket", node="n1", le="+Inf") == 1


def test_names_follow_prometheus_conventions(text: str) -> None:
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    assert {"counter", "gauge", "histogram"} <= set(types.values())  # info: a gauge
    for name, kind in types.items():
        assert name.startswith("tracebridge_"), name
        assert not re.search(r"_(ms|us|ns|kib|mib|kb)(_|$)", name), name  # base units
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
    for sample in samples(text):
        assert sample.labels.get("node") == "n1", sample


def test_a_taken_port_is_one_clear_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"metrics.port: cannot listen on 127.0.0.1:{port}"):
            MetricsServer(MetricsConfig(port=port, address="127.0.0.1"), populated_metrics())


def test_the_endpoint_is_off_unless_a_port_is_set() -> None:
    assert MetricsConfig().port is None
    with pytest.raises(ValueError, match="less than or equal to 65535"):
        MetricsConfig(port=70000)


def test_a_bridge_still_waiting_for_its_node_shows_as_detached() -> None:
    text = served(BridgeMetrics("n1", lambda: 0, source="ipc"))
    assert value(text, "tracebridge_session_attached", source="ipc") == 0
    assert value(text, "tracebridge_sessions_total", source="ipc") == 0
    assert value(text, "tracebridge_ipc_reconnects_total") == 0
    assert not [s for s in samples(text) if s.name.startswith("tracebridge_events_")]


def test_the_bridges_own_records_that_did_not_go_are_counted() -> None:
    text = served(BridgeMetrics("n1", lambda: 0, bridge_records=lambda: (2, 5)))
    assert value(text, "tracebridge_bridge_records_failed_total", node="n1") == 2
    assert value(text, "tracebridge_heartbeats_skipped_total", node="n1") == 5
