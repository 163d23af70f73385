"""A fleet on one machine: emulated nodes, a ``tracebridge run`` each, one Kafka.

A research cluster runs one bridge per node into a shared Kafka (README, "Running a
fleet"). This is that in miniature: USDT and IPC nodes side by side, each traced by its
own ``tracebridge run`` process with its own ``node_id``, all writing to the same topics
(several partitions, records keyed by node). Every node is started held, every bridge
attached, then all nodes fire at once for about the same time, so the topics hold the
nodes' events interleaved as a fleet's are. Each bridge runs with ``reattach`` off, so
it closes its books and exits when its node ends: the run is over when every process
has, and the topics alone are then judged (:mod:`bridge.bench.fleet_check`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.bench.fleet_members import USDT_TRACEPOINTS, IpcMember, Member, UsdtMember
from bridge.bench.ping import BridgeProcess
from bridge.emulator import build_usdt_node

# Bridge settings every member shares: ledgers every second (a short run still shows
# periodic books), and the topics it creates split into partitions, as a fleet's are.
HEARTBEAT_S = "1"
ATTACH_TIMEOUT_S = 180.0  # eight bridges start on two cores: each USDT one compiles BPF


@dataclass(frozen=True)
class FleetSpec:
    """How big a fleet, and how long it fires."""

    usdt_nodes: int = 4
    ipc_nodes: int = 4
    events_per_node: int = 20_000
    seconds: float = 10.0
    partitions: int = 4

    def members(self, usdt_binary: Path | None) -> list[Member]:
        per_tracepoint = max(1, self.events_per_node // USDT_TRACEPOINTS)
        per_stream = max(1, self.events_per_node // 4)
        members: list[Member] = []
        rate = per_tracepoint * USDT_TRACEPOINTS / self.seconds
        for i in range(self.usdt_nodes):
            assert usdt_binary is not None
            node_id = f"fleet-usdt-{i + 1}"
            members.append(UsdtMember(node_id, usdt_binary, per_tracepoint, rate, seed=i + 1))
        for i in range(self.ipc_nodes):
            members.append(
                IpcMember(f"fleet-ipc-{i + 1}", per_stream, per_stream / self.seconds, seed=i + 1)
            )
        return members


@dataclass
class MemberRun:
    """One node and its bridge, as they ended."""

    node_id: str
    source: str
    fired_by_node: dict[str, int]  # stream glob -> what the node says it fired
    status: dict[str, Any]  # the bridge's last status: "stopped", with its books


@dataclass
class FleetRun:
    prefix: str
    members: list[MemberRun]
    attach_s: float  # bridges started -> every one attached
    fire_s: float  # nodes told to go -> every node ended
    settle_s: float  # -> every bridge closed its books and exited


def run_fleet(
    bootstrap: str, spec: FleetSpec, prefix: str, say: Callable[[str], None] = lambda _: None
) -> FleetRun:
    """Run the fleet once into ``prefix``'s topics (see the module docstring)."""
    binary = build_usdt_node() if spec.usdt_nodes else None
    members = spec.members(binary)
    env = {"TRACEBRIDGE_KAFKA__PARTITIONS": str(spec.partitions)}
    env["TRACEBRIDGE_HEARTBEAT_INTERVAL_S"] = HEARTBEAT_S
    with tempfile.TemporaryDirectory(prefix="tb-fleet-") as tmp, ExitStack() as stack:
        bridges: list[BridgeProcess] = []
        for member in members:
            workdir = Path(tmp) / member.node_id
            workdir.mkdir()
            stack.callback(member.close)
            member.start(workdir)
        began = time.monotonic()
        for member in members:
            bridge = BridgeProcess(
                member.bridge_args(), {**env, **member.bridge_env()}, bootstrap, prefix,
                Path(tmp) / member.node_id, node_id=member.node_id,
            )  # fmt: skip
            stack.callback(bridge.close)
            bridges.append(bridge)
        for bridge in bridges:
            bridge.wait_for("attached", None, timeout=ATTACH_TIMEOUT_S)
        attached = time.monotonic()
        say(f"{len(bridges)} bridges attached in {attached - began:.1f} s; the nodes fire")
        for member in members:
            member.go()
        fired = [member.wait(timeout=spec.seconds * 6 + 120) for member in members]
        ended = time.monotonic()
        statuses = [bridge.wait_for("stopped", None, timeout=300) for bridge in bridges]
        for bridge in bridges:
            bridge.process.wait(60)
        settled = time.monotonic()
    runs = [
        MemberRun(member.node_id, member.source, counts, status)
        for member, counts, status in zip(members, fired, statuses, strict=True)
    ]
    return FleetRun(prefix, runs, attached - began, ended - attached, settled - ended)
