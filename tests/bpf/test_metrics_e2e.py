"""The Prometheus endpoint of a real bridge, scraped over HTTP, against its own ledger.

Emulated node → real BPF → bridge (metrics on) → real Kafka. Two sessions (the node is
restarted): the first with dead letters, the second a ping flood into a one-page ring,
so every loss stage the USDT source can see is non-zero somewhere. After each session's
books are closed the endpoint is scraped, and every counter must equal the sum of that
field over the SESSION_END heartbeats read back from Kafka: the counters are monotonic
across sessions and are the ledger's numbers, not an estimate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.config import MetricsConfig
from bridge.emulator import PingStage, UsdtNode, UsdtScenario, build_usdt_node
from tests.support.metrics import ledger_totals, scrape_text, scraped_totals, value
from tests.support.pipeline import read_topics, running_bridge, settings_for, verdicts

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

SCENARIOS = (
    UsdtScenario(count=25, malformed=True, wait_start=True),
    UsdtScenario(mode="ping", stages=(PingStage(rate=0, seconds=1.0),), wait_start=True),
)


def test_every_counter_equals_the_ledger_read_back_from_kafka(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    binary = tmp_path / "bitcoind"  # a private copy: --binary traces any process running it
    shutil.copy2(build_usdt_node(), binary)
    settings = settings_for(
        kafka_bootstrap, topic_prefix, binary=binary, ring_buffer_kib={"net": 4}
    ).model_copy(update={"metrics": MetricsConfig(port=0, address="127.0.0.1")})
    sessions: list[str] = []
    scraped: list[str] = []
    with running_bridge(settings, tmp_path) as bridge:
        for scenario in SCENARIOS:
            with UsdtNode(binary) as node:
                node.start(scenario)
                status = bridge.wait_for("attached", session_not=sessions[-1] if sessions else None)
                sessions.append(status["session_id"])
                server = bridge.bridge.metrics_server
                assert server is not None
                live = scrape_text(server.port)
                assert value(live, "tracebridge_session_attached", source="usdt") == 1
                assert value(live, "tracebridge_ring_size_bytes", ring="net") == 4096
                assert value(live, "tracebridge_ring_size_bytes", ring="mempool") == 4096 * 1024
                assert value(live, "tracebridge_producer_queue_messages") >= 0
                node.go()
                node.wait(timeout=60)
            bridge.wait_for("session_ended", timeout=60)
            scraped.append(scrape_text(server.port))

    records = read_topics(kafka_bootstrap, topic_prefix)
    assert all(v.ok for v in verdicts(records))
    ends = {
        r.value["session_id"]: r.value
        for r in records
        if r.schema is not None
        and r.schema.full_name == "tracebridge.bridge.Heartbeat"
        and r.value is not None
        and r.value["kind"] == "SESSION_END"
    }
    assert set(ends) == set(sessions)

    for done, text in enumerate(scraped, start=1):
        expected = ledger_totals(
            book for session in sessions[:done] for book in ends[session]["streams"]
        )
        got = scraped_totals(text, "emulated-node", "usdt")
        assert got == expected, f"after session {done}"

        delivered = sum(v for (metric, _), v in expected.items() if metric.endswith("delivered"))
        assert value(text, "tracebridge_delivery_latency_seconds_count") == delivered
        assert value(text, "tracebridge_sessions_total", source="usdt") == done
        assert value(text, "tracebridge_session_attached", source="usdt") == 0
        assert value(text, "tracebridge_attach_delay_seconds_count", source="usdt") == done
        assert value(text, "tracebridge_last_attach_delay_seconds", source="usdt") == pytest.approx(
            ends[sessions[done - 1]]["attach_delay_ns"] / 1e9
        )

    final = dict(got)
    # Every loss stage the USDT source can see was exercised, so none compares 0 == 0 only.
    assert sum(v for (m, _), v in final.items() if m.endswith(":kernel")) > 0
    assert sum(v for (m, _), v in final.items() if m.endswith(":bridge")) > 0
    assert sum(v for (m, _), v in final.items() if m == "tracebridge_dead_letters") > 0
