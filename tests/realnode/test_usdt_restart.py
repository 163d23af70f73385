"""A real bitcoind that restarts is traced again within a second of its exec.

Measured before the fix: 13.2 s from the node's launch to the probes being live (a
slow search and a fresh BPF compile), so a peer's reconnect, with its version and
verack, was neither delivered nor counted. The bridge now keeps the compiled program
for the next process and looks for it every 20 ms; the session's ledger states how
long after the node's start its probes were live (``attach_delay_ns``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bridge.consume import ConsumedRecord
from bridge.realnode.node import RegtestNode
from tests.realnode.conftest import NodeFactory
from tests.support.pipeline import (
    events_by_stream,
    read_topics,
    running_bridge,
    settings_for,
    verdicts,
)

pytestmark = [pytest.mark.realnode, pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

PROBES_LIVE_WITHIN_NS = 1_000_000_000


def heartbeats(records: list[ConsumedRecord]) -> list[dict[str, Any]]:
    return [
        r.value
        for r in records
        if r.value is not None
        and r.schema is not None
        and r.schema.full_name == "tracebridge.bridge.Heartbeat"
    ]


def test_a_restarted_node_is_traced_from_its_first_connection(
    regtest_node: NodeFactory, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    peer = regtest_node("peer")
    node = regtest_node("traced", extra_args=(f"-addnode=127.0.0.1:{peer.p2p_port}",))
    settings = settings_for(
        kafka_bootstrap, topic_prefix, pidfile=node.pidfile, tracepoints=["net"]
    )
    with running_bridge(settings, tmp_path) as bridge:
        first = bridge.wait_for("attached")
        node.stop()
        node.start(wait=False)  # the bridge races the node's own start-up
        second = bridge.wait_for("attached", session_not=first["session_id"])
        node.wait_ready()
        peers = _wait_for_peer(node)
        node.stop()
        bridge.wait_for("session_ended")
    assert second["node_pid"] != first["node_pid"]
    assert 0 <= second["attach_delay_ns"] < PROBES_LIVE_WITHIN_NS, second

    records = read_topics(kafka_bootstrap, topic_prefix)
    assert all(v.ok for v in verdicts(records))
    session = second["session_id"]
    ends = [
        h for h in heartbeats(records) if h["session_id"] == session and h["kind"] == "SESSION_END"
    ]
    assert len(ends) == 1
    assert ends[0]["attach_delay_ns"] == second["attach_delay_ns"]

    # What the restarted node did first, seen whole: the connection to its peer and the
    # handshake on it, with the peer id getpeerinfo gave.
    streams = {
        name: [e for e in events if e["envelope"]["session_id"] == session]
        for name, events in events_by_stream(records).items()
    }
    seen = {
        name: [(e["envelope"]["seq"], e.get("msg_type")) for e in v] for name, v in streams.items()
    }
    connections = [
        e for e in streams.get("net:outbound_connection", []) if e["peer_addr"] == peers["addr"]
    ]
    assert len(connections) == 1, (second["attach_delay_ns"], seen)
    (connection,) = connections
    assert connection["peer_id"] == peers["id"]
    assert connection["conn_type"] == "MANUAL"
    sent = [e["msg_type"] for e in streams["net:outbound_message"] if e["peer_id"] == peers["id"]]
    received = [
        e["msg_type"] for e in streams["net:inbound_message"] if e["peer_id"] == peers["id"]
    ]
    assert sent[0] == "version"
    assert received[:2] == ["version", "verack"] or received[0] == "version"
    assert "verack" in sent
    assert "verack" in received


def _wait_for_peer(node: RegtestNode) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for peer in node.call("getpeerinfo"):
            if peer.get("version"):
                return dict(peer)
        time.sleep(0.05)
    raise AssertionError("the restarted node never reconnected to its peer")
