"""The nodes of a fleet run: an emulated USDT node or an emulated IPC node, and how its
bridge is pointed at it.

Each member knows what its node says it fired, counted by the node itself (the USDT
emulator's per-probe counters; the IPC emulator's events offered per stream), so the
books in Kafka can be checked against a count the bridge never touched. The counts
are keyed by stream globs: one per tracepoint for USDT, one per emulated IPC stream
(whose events the bridge spreads over several streams of a subsystem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bridge.emulator import UsdtNode, UsdtScenario
from bridge.emulator.ipc_node import IpcNode
from bridge.emulator.ipc_scenario import IpcScenario, StreamName

# The emulated IPC streams a member runs, and the bridge streams each one feeds (the
# bridge subscribes to exactly these, without the tip follower and without polling, so
# nothing it writes lacks a count of the node's).
IPC_STREAMS: dict[StreamName, str] = {
    "utxo": "utxocache:*",
    "net": "net:*",
    "chain": "chain:*",
    "node_notifications": "node:*",
}
IPC_ENV = {
    "TRACEBRIDGE_IPC__SUBSCRIBE": '["utxo", "net", "chain", "node"]',
    "TRACEBRIDGE_IPC__POLL_INTERVAL_S": "0",
    "TRACEBRIDGE_IPC__REATTACH": "false",
}
USDT_ENV = {"TRACEBRIDGE_USDT__REATTACH": "false"}
USDT_TRACEPOINTS = 20  # every tracepoint the emulator compiles in (wallet included)


class Member(Protocol):
    """One node of the fleet and its bridge's view of it."""

    node_id: str
    source: str

    def start(self, workdir: Path) -> None:
        """Start the node, held: it fires nothing before :meth:`go`."""

    def bridge_args(self) -> list[str]:
        """``tracebridge run`` arguments pointing at the node."""

    def bridge_env(self) -> dict[str, str]:
        """TRACEBRIDGE_* settings this source's bridge needs."""

    def go(self) -> None: ...

    def wait(self, timeout: float) -> dict[str, int]:
        """Wait for the node to end; what it fired, by stream glob (module docstring)."""

    def close(self) -> None: ...


@dataclass
class UsdtMember:
    """The emulated bitcoind firing every tracepoint ``per_tracepoint`` times, round
    robin, at ``rate`` events/s, with seeded random values."""

    node_id: str
    binary: Path
    per_tracepoint: int
    rate: float
    seed: int
    source: str = "usdt"
    node: UsdtNode | None = field(default=None, repr=False)

    def start(self, workdir: Path) -> None:
        scenario = UsdtScenario(
            count=self.per_tracepoint, rate=self.rate, values="random", seed=self.seed,
            wait_start=True,
        )  # fmt: skip
        self.node = UsdtNode(self.binary)
        self.node.start(scenario)

    def bridge_args(self) -> list[str]:
        assert self.node is not None
        return ["--pid", str(self.node.pid)]

    def bridge_env(self) -> dict[str, str]:
        return dict(USDT_ENV)

    def go(self) -> None:
        assert self.node is not None
        self.node.go()

    def wait(self, timeout: float) -> dict[str, int]:
        assert self.node is not None
        report = self.node.wait(timeout)
        return {tracepoint: count for tracepoint, count in report.fired.items()}

    def close(self) -> None:
        if self.node is not None:
            self.node.close()


@dataclass
class IpcMember:
    """The emulated bitcoin-node sending ``per_stream`` events on each of IPC_STREAMS
    at ``rate`` events/s each, over its Unix socket."""

    node_id: str
    per_stream: int
    rate: float
    seed: int
    source: str = "ipc"
    node: IpcNode | None = field(default=None, repr=False)
    socket: Path | None = None

    def start(self, workdir: Path) -> None:
        scenario = IpcScenario(
            streams=tuple(IPC_STREAMS), count=self.per_stream, rate=self.rate,
            values="random", seed=self.seed, wait_start=True,
        )  # fmt: skip
        self.socket = workdir / "node.sock"
        self.node = IpcNode()
        self.node.start(scenario, socket=self.socket)

    def bridge_args(self) -> list[str]:
        return ["--source", "ipc", "--socket", str(self.socket)]

    def bridge_env(self) -> dict[str, str]:
        return dict(IPC_ENV)

    def go(self) -> None:
        assert self.node is not None
        self.node.go()

    def wait(self, timeout: float) -> dict[str, int]:
        """Events offered to the bridge per stream: sent, plus what the node dropped
        and reported (the bridge counts those as node losses)."""
        assert self.node is not None
        report = self.node.wait(timeout)
        return {glob: report.streams[stream].offered for stream, glob in IPC_STREAMS.items()}

    def close(self) -> None:
        if self.node is not None:
            self.node.close()
