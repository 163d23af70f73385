"""A broker that is down: a clear error at startup; counted losses, not a crash, at runtime."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.config import load_settings
from bridge.emulator import UsdtNode, UsdtScenario
from bridge.errors import KafkaSetupError
from bridge.localkafka.broker import LocalBroker
from bridge.sources.usdt.source import UsdtSource
from tests.support.pipeline import final_books, read_topics, running_bridge, verdicts

pytestmark = pytest.mark.kafka


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_broker_at_startup_is_one_clear_error() -> None:
    port = closed_port()
    settings = load_settings(
        None,
        {
            "usdt": {"pid": 1},
            "kafka": {"bootstrap_servers": f"127.0.0.1:{port}", "startup_timeout_s": 2},
        },
    )
    bridge = Bridge(settings, UsdtSource(settings.usdt))
    started = time.monotonic()
    with pytest.raises(KafkaSetupError, match=rf"127\.0\.0\.1:{port} did not answer within 2 s"):
        bridge.run()
    assert time.monotonic() - started < 15


@pytest.mark.bpf
@pytest.mark.slow
def test_broker_outage_mid_run_is_counted_and_the_books_still_balance(
    tmp_path: Path, topic_prefix: str
) -> None:
    """Stop the broker while the node fires, start it again, and require that every
    event is either in the topic or counted as lost at the producer stage (directly,
    or in doubt and not in the topic)."""
    broker = LocalBroker(tmp_path / "kafka", port=0)
    broker.start()
    try:
        scenario = UsdtScenario(tracepoints=("mempool:*",), loop=True, rate=2000, wait_start=True)
        with UsdtNode() as node:
            node.start(scenario)
            settings = load_settings(
                None,
                {
                    "node_id": "outage-node",
                    # by pid: a stray emulator left by another run must not be traced
                    "usdt": {"pid": node.pid, "reattach": False},
                    "kafka": {
                        "bootstrap_servers": broker.bootstrap_servers,
                        "topic_prefix": topic_prefix,
                        "message_timeout_ms": 2000,  # records queued in the outage expire
                        "linger_ms": 5,
                    },
                    "heartbeat_interval_s": 1.0,
                },
            )
            with running_bridge(settings, tmp_path) as bridge:
                bridge.wait_for("attached")
                node.go()
                time.sleep(2)
                broker.stop()  # records produced from here on cannot be delivered in time
                time.sleep(4)
                broker.start()
                time.sleep(3)
                report = node.stop()
                ended = bridge.wait_for("stopped", timeout=120)
        # Records queued in the outage expire unsent (producer losses); any sent just
        # before it expire in doubt, and the verdicts below settle those from the topic.
        assert sum(b["lost"]["producer"] + b["in_doubt"] for b in ended["books"]) > 0
        records = read_topics(broker.bootstrap_servers, topic_prefix)
        books = final_books(records)
        assert books, "the final ledger was not delivered after the broker came back"
        for (_, stream), book in books.items():
            assert book["fired"] == report.fired[stream]
            assert book["in_flight"] == 0
        for verdict in verdicts(records):
            assert verdict.ok, verdict
    finally:
        broker.stop()
