"""``tracebridge demo --source ipc`` and ``--source both`` end to end, as subprocesses.

The emulated IPC node, the real bridge over its Unix socket, real Kafka: the demo must
stop by itself after --duration, exit 0, print books in which every stream balances
and in which the bridge's counts add up to the node's own per node stream, and leave
topics whose records, read back independently, prove the same. Side by side, the USDT
pipeline (real BPF) runs too, under its own node id, and must balance as well.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

pytest.importorskip("capnp")

from bridge.demo import ipc_summary
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.sources.ipc.session import NET_STREAM
from tests.support import demo
from tests.support.pipeline import read_topics, verdicts

pytestmark = [pytest.mark.ipc, pytest.mark.kafka, pytest.mark.slow]

DURATION_S = 8
RATE = 500
NODE_STREAMS = ("utxo", "net", "chain", "node_notifications")
# A bridge stream's row: stream, node stream, fired, delivered, 4 losses, ok.
IPC_ROW = re.compile(r"^(\S+:\S+)\s+(\S+)\s+([\d,]+)\s+([\d,]+)((?:\s+[\d,]+){4})\s+(yes|NO)$")
# A node stream's row: node stream, bridge streams, sent, dropped, sent+dropped,
# bridge fired, not sent, ok.
NODE_ROW = re.compile(
    r"^(utxo|net|chain|node_notifications)\s+(.+?)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)"
    r"\s+([\d,]+)\s+([\d,]+)\s+(yes|NO)$"
)
# The USDT table's row, as in tests/bpf/test_demo.py.
USDT_ROW = re.compile(r"^(\S+:\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)((?:\s+[\d,]+){4})\s+(yes|NO)$")
READ_BACK = re.compile(r"(?:(usdt|ipc) )?([\d,]+) event records \((?:the|its) ledger says ([\d,]+)")

# What the bridge streams over IPC, from the catalogue: every event with an IPC binding,
# the two NetMessage directions being one stream.
IPC_STREAMS = {
    spec.name
    for spec in BY_NAME.values()
    if spec.ipc is not None and spec.ipc.interface != "NetMessageTrace"
} | {NET_STREAM}


def number(text: str) -> int:
    return int(text.replace(",", ""))


def node_stream(stream: str) -> str | None:
    """Which of the emulated node's streams a bridge stream counts toward, worked out
    here from the catalogue's IPC bindings (not with the demo's own mapping)."""
    if stream == NET_STREAM:
        return "net"
    binding = BY_NAME[stream].ipc
    assert binding is not None
    if binding.polled:
        return None
    return {
        "UtxoCacheTrace": "utxo",
        "ChainNotifications": "chain",
        "Mining": None,
    }.get(binding.interface, "node_notifications")


def run_demo(kafka_bootstrap: str, topic_prefix: str, source: str) -> str:
    return demo.run_demo(kafka_bootstrap, topic_prefix, source, duration_s=DURATION_S, rate=RATE)


def check_ipc_section(section: str) -> dict[str, int]:
    """The IPC summary balances, by its numbers; returns delivered per bridge stream."""
    rows = {m[1]: m for line in section.splitlines() if (m := IPC_ROW.match(line.rstrip()))}
    assert set(rows) == IPC_STREAMS, section
    fired_by_node: dict[str, int] = defaultdict(int)
    for stream, row in rows.items():
        expected = node_stream(stream)
        assert row[2] == (expected or "bridge-only"), stream
        fired, delivered = number(row[3]), number(row[4])
        lost = sum(number(v) for v in row[5].split())
        assert row[6] == "yes", stream
        assert fired == delivered + lost, stream
        if expected is not None:
            fired_by_node[expected] += fired
    nodes = {m[1]: m for line in section.splitlines() if (m := NODE_ROW.match(line.rstrip()))}
    assert set(nodes) == set(NODE_STREAMS), section
    total = 0
    for name, row in nodes.items():
        sent, dropped, both, bridge_fired = (number(row[i]) for i in (3, 4, 5, 6))
        assert row[8] == "yes", name
        assert sent > 0, f"the node's {name} stream never fired"
        assert sent + dropped == both == bridge_fired == fired_by_node[name], name
        total += both
    # The node fired at about RATE for DURATION_S (generously bounded: a loaded machine
    # paces late, never early).
    assert RATE * DURATION_S * 0.5 <= total <= RATE * (DURATION_S + 2), section
    assert f"All {len(IPC_STREAMS)} streams balanced" in section
    return {stream: number(row[4]) for stream, row in rows.items()}


def check_usdt_section(section: str) -> dict[str, int]:
    """As tests/bpf/test_demo.py; returns delivered per stream."""
    rows = {m[1]: m for line in section.splitlines() if (m := USDT_ROW.match(line.rstrip()))}
    assert set(rows) == {spec.name for spec in EVENTS}, section
    for stream, row in rows.items():
        node_fired, bpf_fired, delivered = number(row[2]), number(row[3]), number(row[4])
        lost = sum(number(v) for v in row[5].split())
        assert row[6] == "yes", stream
        assert node_fired == bpf_fired == delivered + lost, stream
    assert f"All {len(EVENTS)} streams balanced" in section
    return {stream: number(row[4]) for stream, row in rows.items()}


def check_read_back(output: str, sources: list[str]) -> None:
    """The demo's own consumer read back exactly what each ledger says was delivered
    (per source, side by side; one source's line names none)."""
    line = next(line for line in output.splitlines() if line.startswith("Read back by"))
    assert "caught up" in line, line
    assert "NOT caught up" not in line, line
    found = READ_BACK.findall(line)
    assert [source for source, _, _ in found] == (sources if len(sources) > 1 else [""]), line
    for _, read, delivered in found:
        assert number(read) == number(delivered), line


def check_topics(bootstrap: str, prefix: str, expected: dict[tuple[str, str], int]) -> None:
    """Read independently, the topics prove every stream of every node complete."""
    checked = verdicts(read_topics(bootstrap, prefix))
    assert {(v.key[0], v.key[2]) for v in checked} == set(expected)
    for verdict in checked:
        assert verdict.ok, verdict
        assert verdict.delivered == expected[(verdict.key[0], verdict.key[2])], verdict


def test_demo_over_ipc_balances_against_the_nodes_own_counts(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # The demo's summary names the bridge's net stream without importing pycapnp.
    assert ipc_summary.NET_STREAM == NET_STREAM
    output = run_demo(kafka_bootstrap, topic_prefix, "ipc")
    delivered = check_ipc_section(output)
    check_read_back(output, ["ipc"])
    check_topics(
        kafka_bootstrap,
        topic_prefix,
        {("demo-node", stream): n for stream, n in delivered.items()},
    )


@pytest.mark.bpf
def test_demo_runs_both_sources_side_by_side(kafka_bootstrap: str, topic_prefix: str) -> None:
    output = run_demo(kafka_bootstrap, topic_prefix, "both")
    usdt_at = output.index("USDT pipeline (eBPF), node demo-node-usdt: final books")
    ipc_at = output.index("IPC pipeline (Cap'n Proto), node demo-node-ipc: final books")
    side_at = output.index("Side by side:")
    assert usdt_at < ipc_at < side_at
    usdt = check_usdt_section(output[usdt_at:ipc_at])
    ipc = check_ipc_section(output[ipc_at:side_at])
    side = output[side_at:].splitlines()[2:4]
    assert [line.split()[:2] for line in side] == [
        ["usdt", "demo-node-usdt"],
        ["ipc", "demo-node-ipc"],
    ]
    assert all(line.rstrip().endswith("yes") for line in side), side
    check_read_back(output, ["usdt", "ipc"])
    expected = {("demo-node-usdt", stream): n for stream, n in usdt.items()}
    expected |= {("demo-node-ipc", stream): n for stream, n in ipc.items()}
    check_topics(kafka_bootstrap, topic_prefix, expected)
