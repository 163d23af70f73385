"""The ping flood on the emulated USDT node (bridge/emulator/usdt_node.c).

The node fires net:inbound_message / net:outbound_message pairs; its cost per event is
the firing thread's CPU per probe hit, traced (a uprobe trap into the BPF program) and
untraced (the semaphore is off: a load and a branch).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

from bridge.bench.ping import NodeRun
from bridge.emulator import PingStage, StageReport, UsdtNode, UsdtScenario, build_usdt_node


def _us_per_hit(stage: StageReport) -> float | None:
    return stage.thread_cpu_ns / stage.hits / 1000 if stage.hits else None


class UsdtRunner:
    """The USDT source's side of :func:`bridge.bench.ping.run_rates`."""

    source = "usdt"

    def __init__(self) -> None:
        # A private copy: the bridge traces every process running its --binary, and
        # tests or demos on the same machine run the shared build meanwhile (a run
        # would measure whichever node attached first).
        workdir = tempfile.mkdtemp(prefix="tb-bench-usdt-")
        weakref.finalize(self, shutil.rmtree, workdir, ignore_errors=True)
        self.binary: Path = Path(workdir) / "bitcoind"
        shutil.copy2(build_usdt_node(), self.binary)

    def bridge_args(self) -> list[str]:
        return ["--binary", str(self.binary), "-t", "net:*_message"]

    def bridge_env(self) -> dict[str, str]:
        return {}

    def _scenario(self, rate_eps: float, seconds: float, wait: bool) -> UsdtScenario:
        return UsdtScenario(
            mode="ping", stages=(PingStage(rate_eps / 2, seconds),), wait_start=wait
        )

    def traced(self, rate_eps: float, seconds: float, attached: Callable[[], None]) -> NodeRun:
        with UsdtNode(self.binary) as node:
            node.start(self._scenario(rate_eps, seconds, wait=True))
            attached()
            node.go()
            (stage,) = node.wait(timeout=seconds * 4 + 60).stages
        return NodeRun(stage.events_fired, stage.elapsed_s, _us_per_hit(stage))

    def untraced_us_per_event(self, rate_eps: float, seconds: float) -> float | None:
        with UsdtNode(self.binary) as node:
            node.start(self._scenario(rate_eps, seconds, wait=False))
            (stage,) = node.wait(timeout=seconds * 4 + 60).stages
        return _us_per_hit(stage)
