"""The IPC leg's node: the emulated bitcoin-node serving Cap'n Proto on a Unix socket.

All four of its streams run (utxo, net, chain, node_notifications) with ``--rate``
split evenly across them, held with ``--wait-start`` until the bridge has subscribed,
and with ``--linger`` so a stream that ends early never takes the socket with it: the
session must end only when the demo stops the node, as it does for USDT.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

from bridge.config import BridgeSettings
from bridge.demo.plan import SourceName
from bridge.emulator.ipc_node import IpcNode, IpcNodeError
from bridge.emulator.ipc_report import IpcReport
from bridge.emulator.ipc_scenario import STREAMS, IpcScenario
from bridge.errors import ConfigError
from bridge.sources.base import Source

log = logging.getLogger(__name__)

# The emulator unsubscribes everyone, closes and reports within a second of SIGTERM.
NODE_STOP_TIMEOUT_S = 30.0
# How often the bridge polls the node's state into snapshot records (node:peers, ...):
# often enough that a short demo shows them move.
POLL_INTERVAL_S = 2.0
# The bridge writes ``attached`` once the session is configured; it subscribes on its
# event loop right after (a few round trips on the socket). Events generated before a
# subscription would reach nobody, so the node is held this much longer. The summary
# does not depend on it: it compares what the node sent with what the bridge counted.
SUBSCRIBE_SETTLE_S = 1.0


class IpcDemoNode:
    """The emulated IPC node, all four streams at ``rate`` events/s in total."""

    source: SourceName = "ipc"

    def __init__(self, rate: float) -> None:
        # Both the bridge's IPC source and the emulated node speak Cap'n Proto through
        # pycapnp: say so now, not as an ImportError from a thread or the node's stderr.
        if importlib.util.find_spec("capnp") is None:
            raise ConfigError(
                "--source ipc needs pycapnp: pip install 'tracebridge[ipc]' "
                "(scripts/bootstrap installs it)"
            )
        self.rate = rate
        self._node: IpcNode | None = None
        self._socket: Path | None = None

    @property
    def running(self) -> bool:
        return self._node is not None and self._node.running

    def start(self, stack: contextlib.ExitStack, workdir: Path) -> str:
        node = stack.enter_context(IpcNode())
        self._socket = workdir / "ipc-node.sock"
        node.start(
            IpcScenario(
                streams=STREAMS,
                count=0,  # no end of its own: the demo stops it
                rate=self.rate / len(STREAMS),
                wait_start=True,
                linger=True,
            ),
            socket=self._socket,
        )
        self._node = node
        return (
            f"Emulated IPC node running (pid {node.pid}) on {self._socket}; the bridge "
            f"subscribes to its {len(STREAMS)} streams over Cap'n Proto ..."
        )

    def bridge_overrides(self) -> dict[str, Any]:
        return {
            "source": "ipc",
            "ipc": {
                "socket": str(self._socket),
                "poll_interval_s": POLL_INTERVAL_S,
                "reattach": False,  # one node run, one session, one set of books
            },
        }

    def make_source(self, settings: BridgeSettings) -> Source:
        from bridge.sources.ipc.source import IpcSource  # pycapnp only when asked for

        return IpcSource(settings.ipc)

    def settle(self, interrupted: threading.Event) -> None:
        interrupted.wait(SUBSCRIBE_SETTLE_S)

    def go(self) -> None:
        self._require().go()

    def stop(self) -> IpcReport | None:
        try:
            return self._require().stop(NODE_STOP_TIMEOUT_S)
        except IpcNodeError as error:
            log.error("The emulated IPC node did not stop cleanly: %s", error)
            return None

    def heading(self, streams: int) -> str:
        pid = self._node.pid if self._node is not None else 0
        return (
            f"emulated bitcoin-node pid {pid}: {len(STREAMS)} IPC streams at "
            f"{self.rate:,.0f} events/s  ->  Cap'n Proto ({streams} bridge streams)"
        )

    def _require(self) -> IpcNode:
        if self._node is None:
            raise IpcNodeError("the emulated IPC node has not been started")
        return self._node
