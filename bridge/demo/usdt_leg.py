"""The USDT leg's node: the emulated bitcoind firing Bitcoin Core's 20 tracepoints.

The bridge attaches eBPF probes to this process (by pid), so the node is held with
``--wait-start`` until every probe is attached: its own count of fired events and the
probes' count must then agree exactly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

from bridge.config import BridgeSettings
from bridge.demo.plan import SourceName
from bridge.emulator import EmulatorError, EmulatorReport, UsdtNode, UsdtScenario, build_usdt_node
from bridge.sources.base import Source
from bridge.sources.usdt.selection import select_events
from bridge.sources.usdt.source import UsdtSource

log = logging.getLogger(__name__)

# The emulator stops firing at once on SIGTERM and writes its report in milliseconds.
NODE_STOP_TIMEOUT_S = 30.0


class UsdtDemoNode:
    """The emulated bitcoind, firing the selected tracepoints round-robin at ``rate``."""

    source: SourceName = "usdt"

    def __init__(self, rate: float, tracepoints: tuple[str, ...]) -> None:
        self.rate = rate
        # ConfigError for a bad -t, before anything starts.
        self.names = tuple(spec.name for spec in select_events(tracepoints or ("*",)))
        self._node: UsdtNode | None = None

    @property
    def running(self) -> bool:
        return self._node is not None and self._node.running

    def start(self, stack: contextlib.ExitStack, workdir: Path) -> str:
        node = stack.enter_context(UsdtNode(build_usdt_node()))
        node.start(
            UsdtScenario(
                mode="mixed", loop=True, rate=self.rate, tracepoints=self.names, wait_start=True
            )
        )
        self._node = node
        return (
            f"Emulated node running (pid {node.pid}); attaching eBPF probes to its "
            f"{len(self.names)} tracepoints (BCC compiles the program first) ..."
        )

    def bridge_overrides(self) -> dict[str, Any]:
        return {
            "source": "usdt",
            # reattach off: one node run, one session, one set of books.
            "usdt": {"pid": self._require().pid, "tracepoints": self.names, "reattach": False},
        }

    def make_source(self, settings: BridgeSettings) -> Source:
        return UsdtSource(settings.usdt)

    def settle(self, interrupted: threading.Event) -> None:
        """Nothing to wait for: ``attached`` means every probe is in place."""

    def go(self) -> None:
        self._require().go()

    def stop(self) -> EmulatorReport | None:
        try:
            return self._require().stop(NODE_STOP_TIMEOUT_S)
        except EmulatorError as error:
            log.error("The emulated USDT node did not stop cleanly: %s", error)
            return None

    def heading(self, streams: int) -> str:
        pid = self._node.pid if self._node is not None else 0
        return (
            f"emulated bitcoind pid {pid}: {streams} tracepoints at "
            f"{self.rate:,.0f} events/s  ->  eBPF"
        )

    def _require(self) -> UsdtNode:
        if self._node is None:
            raise EmulatorError("the emulated USDT node has not been started")
        return self._node
