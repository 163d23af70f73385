"""A fleet into one Kafka: 4 emulated USDT nodes and 4 emulated IPC nodes, each traced by
its own ``tracebridge run`` process with its own node_id, all firing at once into the
same topics (3 partitions each, records keyed by node).

Judged from the topics alone, as a fleet's operator would:

* every record is keyed by, and names, the node whose bridge wrote it;
* ``tracebridge audit --require-closed --workers 2`` passes for every (node, session,
  stream), with the single-process audit's exact report;
* each node's SESSION_END ledgers say it fired exactly what the node itself counted
  (per tracepoint for USDT, per emulated stream for IPC), and delivered + lost == fired;
* ``tracebridge replay --merge`` holds every delivered record once, all nodes
  interleaved, in event-time order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from bridge.bench.fleet import FleetSpec, run_fleet
from bridge.bench.fleet_bench import replay_merged
from bridge.bench.fleet_check import check_books, check_merged
from bridge.replay.audit import read_audit
from tests.support.pipeline import read_topics

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.ipc, pytest.mark.slow]

SPEC = FleetSpec(usdt_nodes=4, ipc_nodes=4, events_per_node=1_000, seconds=2.0, partitions=3)


def audit_cli(bootstrap: str, prefix: str, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bridge", "audit", "-b", bootstrap, "--prefix", prefix]
    command += ["--require-closed", "--workers", "2", "--json", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_fleet_is_complete_per_node_and_merges_in_time_order(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    run = run_fleet(kafka_bootstrap, SPEC, topic_prefix)
    nodes = {m.node_id: m for m in run.members}
    assert len(nodes) == 8
    assert Counter(m.source for m in run.members) == {"usdt": 4, "ipc": 4}
    for member in run.members:
        assert member.status["state"] == "stopped", member.status
        assert member.status["sessions"] == 1

    # Keyed and identified by node: the key, the node header, the record's own node_id.
    records = read_topics(kafka_bootstrap, topic_prefix)
    assert [r.error for r in records if r.value is None] == []
    for record in records:
        assert record.value is not None
        named = record.value.get("envelope", record.value)["node_id"]
        assert named in nodes
        assert record.key == named.encode() == record.headers["node"]

    done = audit_cli(kafka_bootstrap, topic_prefix, tmp_path / "audit.json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "audit.json").read_text())
    one = read_audit(kafka_bootstrap, topic_prefix).judge(require_closed=True)
    assert report == json.loads(json.dumps(one.as_dict()))

    # Each node's books against the node's own count.
    streams = report["streams"]
    assert {s["node_id"] for s in streams} == set(nodes)
    for node_id, member in nodes.items():
        mine = [s for s in streams if s["node_id"] == node_id]
        assert len({s["session_id"] for s in mine}) == 1, node_id
        for s in mine:
            assert s["status"] == "ok", s
            assert s["delivered"] + sum(s["lost"].values()) == s["fired"], s
            assert any(fnmatchcase(s["stream"], glob) for glob in member.fired_by_node), s
        for glob, count in member.fired_by_node.items():
            assert count > 0, (node_id, glob)
            fired = sum(s["fired"] for s in mine if fnmatchcase(s["stream"], glob))
            assert fired == count, (node_id, glob)
        assert sum(member.fired_by_node.values()) >= SPEC.events_per_node * 0.9
    assert all(v.ok for v in check_books(run.members, one)), check_books(run.members, one)

    # One replay of the whole fleet, nodes merged by event time.
    out = tmp_path / "merged.jsonl"
    replay_merged(kafka_bootstrap, topic_prefix, out)
    envelopes = [json.loads(line)["envelope"] for line in out.read_text().splitlines()]
    times = [e["ts_wall_ns"] for e in envelopes]
    assert times == sorted(times)
    replayed = Counter((e["node_id"], e["stream"]) for e in envelopes)
    delivered = Counter({(s["node_id"], s["stream"]): s["delivered"] for s in streams})
    assert replayed == +delivered
    assert len({e["node_id"] for e in envelopes}) == 8
    with out.open() as lines:
        merged = check_merged(lines)
    assert merged.problems(one) == []
    assert merged.node_switches > 100  # interleaved, not node after node
