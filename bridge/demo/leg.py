"""One source's pipeline in the demo: an emulated node, the bridge that reads it, its books.

USDT and IPC differ only in the node they start and the source they hand the bridge;
the order that keeps the books exact is the same for both, so it is written once here:
node started but held -> bridge attached -> (the caller starts the consumer) -> go ->
... -> node stopped first -> the bridge sees it go and closes its session by itself.
Side by side, the demo runs two legs over the same Kafka topics.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from bridge.cli.run import flag_overrides
from bridge.config import BridgeSettings, load_settings
from bridge.demo.books import LedgerBoard, subsystem_of
from bridge.demo.plan import DemoPlan, SourceName
from bridge.demo.runner import BridgeRunner
from bridge.emulator import EmulatorReport
from bridge.emulator.ipc_report import IpcReport
from bridge.ledger import StreamLedger
from bridge.sources.base import Source

log = logging.getLogger(__name__)

# The ledger is written this often; the view's ledger numbers move at this pace.
HEARTBEAT_INTERVAL_S = 2.0

# What an emulated node says it did once stopped: its own, independent counts.
NodeReport: TypeAlias = EmulatorReport | IpcReport


class EmulatedNode(Protocol):
    """What the demo needs of an emulated node, whichever interface it offers."""

    source: SourceName

    @property
    def running(self) -> bool:
        """False once the process has exited (on its own or stopped)."""

    def start(self, stack: contextlib.ExitStack, workdir: Path) -> str:
        """Start the node, held (nothing fires before :meth:`go`); register its cleanup
        on ``stack``. Returns what to tell the person while the bridge attaches."""

    def bridge_overrides(self) -> dict[str, Any]:
        """The settings (as load_settings overrides) that point a bridge at this node."""

    def make_source(self, settings: BridgeSettings) -> Source:
        """The bridge's source for this node."""

    def settle(self, interrupted: threading.Event) -> None:
        """After the bridge says ``attached``: wait until it can see every event."""

    def go(self) -> None:
        """Let the held node fire."""

    def stop(self) -> NodeReport | None:
        """Stop firing and return the node's report (None, logged, if it failed)."""

    def heading(self, streams: int) -> str:
        """One line for the view: what fires, how fast, and through what."""


@dataclass(frozen=True)
class LegInfo:
    """What stays the same for one leg's whole run (part of the view's heading)."""

    source: SourceName
    node_id: str
    heading: str
    session_id: str
    streams: tuple[str, ...]

    @property
    def subsystems(self) -> frozenset[str]:
        """The topics' subsystems this leg's streams write to."""
        return frozenset(subsystem_of(stream) for stream in self.streams)


@dataclass(frozen=True)
class LegOutcome:
    """One leg after the stop: everything its part of the summary needs."""

    info: LegInfo
    report: NodeReport | None  # the node's own counts; None if it failed
    books: tuple[StreamLedger, ...] | None  # the last ledger the bridge reported
    closed: bool  # the session ended with a SESSION_END ledger


class DemoLeg:
    """One emulated node and the bridge that streams it into Kafka."""

    def __init__(self, node: EmulatedNode, plan: DemoPlan) -> None:
        self.node = node
        self.source: SourceName = node.source
        self.node_id = plan.node_id_for(node.source)
        self.board = LedgerBoard()
        self.info: LegInfo | None = None
        self._plan = plan
        self._runner: BridgeRunner | None = None
        self._report: NodeReport | None = None

    def start(
        self,
        stack: contextlib.ExitStack,
        workdir: Path,
        bootstrap_servers: str,
        say: Callable[[str], None],
    ) -> None:
        """Start the node (held) and the bridge; both are cleaned up by ``stack``."""
        say(self.node.start(stack, workdir))
        settings = self._settings(bootstrap_servers)
        runner = BridgeRunner(
            settings,
            self.node.make_source(settings),
            workdir / f"status-{self.source}.json",
            self.board.record,
            name=f"bridge-{self.source}",
        )
        stack.callback(runner.shutdown)
        self._runner = runner
        runner.start()

    def wait_attached(self, interrupted: threading.Event) -> LegInfo | None:
        """The leg's info once its bridge is attached and settled; None if interrupted."""
        assert self._runner is not None, "start() first"
        status = self._runner.wait_attached(interrupted)
        if status is None:
            return None
        self.node.settle(interrupted)
        if interrupted.is_set():
            return None
        streams = tuple(str(name) for name in status.get("streams", ()))
        self.info = LegInfo(
            source=self.source,
            node_id=self.node_id,
            heading=self.node.heading(len(streams)),
            session_id=str(status.get("session_id", "")),
            streams=streams,
        )
        return self.info

    def go(self) -> None:
        self.node.go()

    def problem(self) -> str | None:
        """Why this leg cannot go on (a piece died on its own), or None."""
        runner = self._runner
        if runner is not None and not runner.running:
            error = runner.error
            return f"the {self.source} bridge stopped" + (f": {error!r}" if error else "")
        if self.info is not None and not self.node.running:
            return f"the emulated {self.source} node exited on its own"
        return None

    def stop_node(self) -> None:
        """The first step of every stop: the node's report is final from here on."""
        self._report = self.node.stop()

    def finish(self, hurry: threading.Event) -> LegOutcome:
        """Let the bridge close its books (the node is gone), then gather the outcome.
        Raises the bridge's own error if it failed."""
        closed = False
        if self._runner is not None:
            closed = self._runner.finish(hurry)
            if self._runner.error is not None:
                raise self._runner.error
        assert self.info is not None, "finish() after wait_attached()"
        return LegOutcome(self.info, self._report, self.board.latest_books(), closed)

    def _settings(self, bootstrap_servers: str) -> BridgeSettings:
        overrides = flag_overrides(
            node_id=self.node_id,
            bootstrap_servers=bootstrap_servers,
            topic_prefix=self._plan.topic_prefix,
        )
        overrides["heartbeat_interval_s"] = HEARTBEAT_INTERVAL_S
        return load_settings(None, {**overrides, **self.node.bridge_overrides()})
