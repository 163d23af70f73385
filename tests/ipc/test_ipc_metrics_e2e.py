"""The Prometheus endpoint of a real bridge with the IPC source, scraped over HTTP,
against its own ledger.

Emulated bitcoin-node → real Unix socket → bridge (IPC source, metrics on) → real
Kafka. One bridge process, three sessions on the same socket (the node is restarted
twice, so the bridge reconnects twice):

1. a ping flood into a 256-event node-side queue drained 32 per batch: the node drops
   much of it and reports the drops (loss stage ``node``);
2. every stream, each sending one malformed value: dead letters (loss stage ``bridge``);
   the node notifications' topic was created beforehand with a limit no record batch
   fits in, so Kafka refuses all of them (loss stage ``producer``);
3. a utxo stream cut off by SIGKILL: the connection just breaks.

After each session's books are closed the endpoint is scraped, and every counter must
equal the sum of that field over the SESSION_END heartbeats read back from Kafka, per
node and stream; the session and reconnect counters must count the connections.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("capnp")

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.config import MetricsConfig
from bridge.emulator.ipc_node import IpcNode
from bridge.emulator.ipc_scenario import IpcScenario, PingStage
from tests.ipc.ipc_harness import (
    BRIDGE_STREAMS,
    NET_STREAM,
    NODE_ID,
    IpcBridge,
    ipc_settings,
    running_ipc_bridge,
)
from tests.support.metrics import ledger_totals, samples, scrape_text, scraped_totals, value
from tests.support.pipeline import read_topics, verdicts

pytestmark = [pytest.mark.ipc, pytest.mark.kafka, pytest.mark.slow]

UTXO = BRIDGE_STREAMS["utxo"]
NODE = BRIDGE_STREAMS["node_notifications"]
MALFORMED_COUNT = 12


def create_refusing_topic(bootstrap: str, topic: str) -> None:
    """A topic whose max.message.bytes no record batch fits in: the bridge leaves an
    existing topic as it is, and Kafka refuses every record produced to it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.create_topics(
        [NewTopic(topic, 1, 1, config={"max.message.bytes": "64"})]
    ).values()
    future.result(30)


def check_live(bridge: IpcBridge, sessions_before: int) -> None:
    """While a session runs: attached, counted, and a reconnect if it is not the first."""
    server = bridge.bridge.metrics_server
    assert server is not None
    live = scrape_text(server.port)
    assert value(live, "tracebridge_session_attached", source="ipc") == 1
    assert value(live, "tracebridge_sessions_total", source="ipc") == sessions_before + 1
    assert value(live, "tracebridge_ipc_reconnects_total") == sessions_before
    assert value(live, "tracebridge_producer_queue_messages") >= 0
    assert not [s for s in samples(live) if s.name.startswith("tracebridge_ring_")]


def test_every_counter_equals_the_ledger_read_back_from_kafka(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    socket = tmp_path / "node.sock"
    settings = ipc_settings(
        kafka_bootstrap,
        topic_prefix,
        socket,
        subscribe=["net", "utxo", "chain", "node"],
        poll_interval_s=0,
        max_queue_events=256,
        max_batch_events=32,
    ).model_copy(update={"metrics": MetricsConfig(port=0, address="127.0.0.1")})
    create_refusing_topic(kafka_bootstrap, f"{topic_prefix}.node")  # the node:* streams
    sessions: list[str] = []
    scraped: list[str] = []
    with running_ipc_bridge(settings, tmp_path) as bridge:

        def attached() -> str:
            session = bridge.wait_for("attached", session_not=sessions)["session_id"]
            check_live(bridge, len(sessions))
            sessions.append(session)
            return str(session)

        def closed(session: str) -> None:
            bridge.wait_for("session_ended", session=session, timeout=60)
            server = bridge.bridge.metrics_server  # set by the bridge's thread as it starts
            assert server is not None
            scraped.append(scrape_text(server.port))

        # 1. Overload: the node drops, and says so in each batch.
        with IpcNode() as node:
            flood = IpcScenario(
                streams=("net",),
                ping=True,
                stages=(PingStage(rate=50_000, seconds=0.5),),
                block_interval=0,
                wait_start=True,
            )
            node.start(flood, socket=socket)
            one = attached()
            node.go()
            report = node.wait(timeout=60)  # the node exits once its stage is over
        closed(one)
        assert report.streams["net"].dropped > 0, "the flood must overflow the node's queue"

        # 2. The node is back: a reconnect, and a malformed value on every stream.
        with IpcNode() as node:
            malformed = IpcScenario(
                streams=("utxo", "net", "chain", "node_notifications"),
                count=MALFORMED_COUNT,
                malformed_after=3,
                block_interval=0,
                wait_start=True,
                linger=True,
            )
            node.start(malformed, socket=socket)
            two = attached()
            node.go()
            for bridged in BRIDGE_STREAMS.values():
                bridge.wait_captured(two, bridged, MALFORMED_COUNT + 1)  # + the bad one
            node.stop()
        closed(two)

        # 3. Again, and this node is killed mid-stream (its socket file stays behind).
        with IpcNode() as node:
            node.start(
                IpcScenario(streams=("utxo",), count=0, rate=300, wait_start=True), socket=socket
            )
            three = attached()
            node.go()
            bridge.wait_captured(three, UTXO, 30)
        # Leaving the block SIGKILLs the node.
        closed(three)

    records = read_topics(kafka_bootstrap, topic_prefix)
    checked = verdicts(records)
    assert {c.key[1] for c in checked} == set(sessions)
    assert all(c.ok for c in checked), checked
    ends = {
        r.value["session_id"]: r.value
        for r in records
        if r.schema is not None
        and r.schema.full_name == "tracebridge.bridge.Heartbeat"
        and r.value is not None
        and r.value["kind"] == "SESSION_END"
    }
    assert set(ends) == set(sessions)
    assert len(set(sessions)) == 3

    got: dict[tuple[str, str], int] = {}
    for done, text in enumerate(scraped, start=1):
        expected = ledger_totals(
            book for session in sessions[:done] for book in ends[session]["streams"]
        )
        got = scraped_totals(text, NODE_ID, "ipc")
        assert got == expected, f"after session {done}"

        delivered = sum(v for (metric, _), v in expected.items() if metric.endswith("delivered"))
        assert value(text, "tracebridge_delivery_latency_seconds_count") == delivered
        assert value(text, "tracebridge_sessions_total", source="ipc") == done
        assert value(text, "tracebridge_ipc_reconnects_total") == done - 1
        assert value(text, "tracebridge_session_attached", source="ipc") == 0
        # Over a socket the node's start is unknown: no attach delay is claimed.
        assert not [s for s in samples(text) if "attach_delay" in s.name and s.value]
        assert not [s for s in samples(text) if s.labels.get("source") == "usdt"]

    # Each session made the counters move where the scenario guarantees it, so no
    # comparison above is 0 == 0 only.
    def total(metric: str, stream: str | None = None) -> int:
        return sum(v for (m, s), v in got.items() if m == metric and stream in (None, s))

    dropped = report.streams["net"].dropped
    assert total("tracebridge_events_lost:node") == total(
        "tracebridge_events_lost:node", NET_STREAM
    )
    assert total("tracebridge_events_lost:node", NET_STREAM) == dropped > 0
    assert total("tracebridge_events_lost:bridge") == total("tracebridge_dead_letters")
    refused = sum(total("tracebridge_events_lost:producer", s) for s in NODE)
    assert refused == total("tracebridge_events_lost:producer") > 0
    assert sum(total("tracebridge_events_delivered", s) for s in NODE) == 0
    assert refused == sum(total("tracebridge_events_produced", s) for s in NODE)
    assert total("tracebridge_dead_letters") == len(BRIDGE_STREAMS)
    assert total("tracebridge_events_fired", NET_STREAM) > 20_000
    utxo_delivered = sum(total("tracebridge_events_delivered", s) for s in UTXO)
    assert utxo_delivered >= MALFORMED_COUNT + 30
