"""The ping flood on the emulated IPC node, through the RFC prototype's NetMessageTrace.

The node queues ping/pong NetMessages per subscriber and sends batches (one in flight
at a time, maxBatchEvents per batch); its cost per event is the node process's CPU per
event sent. Every run uses the same socket path, so one bridge process re-connects to
each new node, as it would to a restarted bitcoin-node.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from bridge.bench.ping import NodeRun
from bridge.emulator import PingStage
from bridge.emulator.ipc_node import IpcNode
from bridge.emulator.ipc_scenario import IpcScenario


class IpcRunner:
    """The IPC source's side of :func:`bridge.bench.ping.run_rates`."""

    source = "ipc"

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="tb-bench-ipc-"))
        self.socket = self._dir / "node.sock"

    def bridge_args(self) -> list[str]:
        return ["--source", "ipc", "--socket", str(self.socket)]

    def bridge_env(self) -> dict[str, str]:
        # Only the message stream, no polling: anything else would add its own events
        # and CPU to a run that measures P2P messages.
        return {"TRACEBRIDGE_IPC__SUBSCRIBE": '["net"]', "TRACEBRIDGE_IPC__POLL_INTERVAL_S": "0"}

    def _scenario(self, rate_eps: float, seconds: float, wait: bool) -> IpcScenario:
        return IpcScenario(
            streams=("net",), ping=True, stages=(PingStage(rate_eps / 2, seconds),),
            wait_start=wait,
        )  # fmt: skip

    def traced(self, rate_eps: float, seconds: float, attached: Callable[[], None]) -> NodeRun:
        with IpcNode() as node:
            node.start(self._scenario(rate_eps, seconds, wait=True), socket=self.socket)
            attached()
            node.go()
            report = node.wait(timeout=seconds * 4 + 60)
        (stage,) = report.stages
        return NodeRun(stage.sent, stage.elapsed_s, stage.cpu_us_per_event)

    def untraced_us_per_event(self, rate_eps: float, seconds: float) -> float | None:
        """Nothing subscribed: the node generates no message events at all, so there is
        no cost per event to compare (unlike USDT's semaphore-off probe)."""
        return None
