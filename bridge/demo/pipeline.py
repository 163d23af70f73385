"""Start and stop the demo's pieces in the order that keeps the books exact.

Start: the broker (unless one was given) -> the emulated node, started but held
(``--wait-start``) -> the bridge in a background thread -> wait until its status file
says ``attached`` -> the consumer fixes its starting offsets -> ``node.go()``. Nothing
fires before every probe is attached, so the node's count of fired events and the
bridge's must agree exactly.

Stop: the node first. Its report is then final, and the bridge sees the process exit,
which ends the session the ordinary way: drain the rings to the end, settle every
record with Kafka, write the SESSION_END ledger. The bridge's own stop event is only a
fallback (a second Ctrl-C, or a session that does not end in time).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from bridge.app import FINISH_FLUSH_S, Bridge
from bridge.cli.kafka_target import local_broker
from bridge.cli.run import flag_overrides
from bridge.config import BridgeSettings, KafkaConfig, load_settings
from bridge.demo.books import LedgerBoard
from bridge.demo.lag import ConsumerSnapshot, LagConsumer
from bridge.demo.view import DemoInfo
from bridge.emulator import EmulatorError, EmulatorReport, UsdtNode, UsdtScenario, build_usdt_node
from bridge.events.catalog import SUBSYSTEMS
from bridge.ledger import StreamLedger
from bridge.sinks.kafka.topics import admin_client, all_topics, check_reachable
from bridge.sources.usdt.selection import select_events
from bridge.sources.usdt.source import UsdtSource
from bridge.status import BridgeExited, StatusFile

log = logging.getLogger(__name__)

# The ledger is written this often; the view's ledger numbers move at this pace.
HEARTBEAT_INTERVAL_S = 2.0
# Attaching compiles the BPF program with BCC (5-20 s on 2 busy cores) after creating
# the topics (up to 30 s against a slow broker).
ATTACH_TIMEOUT_S = 180.0
# The emulator stops firing at once on SIGTERM and writes its report in milliseconds.
NODE_STOP_TIMEOUT_S = 30.0
# Closing the books may wait for Kafka twice (records, then the final ledger), each up
# to FINISH_FLUSH_S; a little more for draining the rings and closing the producer.
SESSION_CLOSE_TIMEOUT_S = 2 * FINISH_FLUSH_S + 15.0
# After the bridge's stop event is set: the same flushes, then the demo gives up.
BRIDGE_ABORT_TIMEOUT_S = 2 * FINISH_FLUSH_S + 15.0
# How long the consumer may take to read back the last records before the summary.
CATCH_UP_TIMEOUT_S = 15.0
# Granularity of waits that must notice Ctrl-C and a failed bridge thread.
WAIT_STEP_S = 0.1
# How long a given broker may take to answer before the demo gives up on it.
KAFKA_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DemoPlan:
    """What the person asked for on the command line."""

    rate: float
    tracepoints: tuple[str, ...]  # globs or subsystem names; empty: all
    bootstrap_servers: str | None  # None: start (or reuse) the local broker
    topic_prefix: str
    node_id: str


@dataclass(frozen=True)
class DemoOutcome:
    """Everything the summary needs, gathered after the stop."""

    report: EmulatorReport | None  # the node's own counts; None if it failed
    books: tuple[StreamLedger, ...] | None  # the last ledger the bridge reported
    closed: bool  # the session ended with a SESSION_END ledger
    consumer: ConsumerSnapshot | None
    caught_up: bool


class BridgeRunner:
    """The unchanged bridge in a background thread, observed through its status file."""

    def __init__(
        self,
        settings: BridgeSettings,
        status_file: Path,
        on_books: Callable[[list[StreamLedger]], None],
    ) -> None:
        self.stop = threading.Event()
        self.status_file = status_file
        self.bridge = Bridge(
            settings,
            UsdtSource(settings.usdt),
            stop=self.stop,
            status_file=status_file,
            on_books=on_books,
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bridge", daemon=True)

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as error:  # handed to the main thread, which reports it
            self.error = error

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        return StatusFile(self.status_file).read()

    def wait_attached(self, interrupted: threading.Event) -> dict[str, Any] | None:
        """The status once attached; None if interrupted. Raises the bridge's own error
        if it failed to start (unreachable Kafka, BPF that does not load, ...)."""
        try:
            return StatusFile(self.status_file).wait_for(
                "attached",
                timeout=ATTACH_TIMEOUT_S,
                still_running=lambda: self.running,
                interrupted=interrupted,
            )
        except BridgeExited as exited:
            self._raise_error(str(exited))

    def finish(self, hurry: threading.Event) -> bool:
        """Wait for the session to close by itself (the node has exited); set the stop
        event if ``hurry`` is set or it takes too long. True if the books were closed."""
        deadline = time.monotonic() + SESSION_CLOSE_TIMEOUT_S
        while self.running and time.monotonic() < deadline and not hurry.is_set():
            self._thread.join(WAIT_STEP_S)
        if self.running:
            log.warning("Telling the bridge to stop now.")
            self.stop.set()
            self._thread.join(BRIDGE_ABORT_TIMEOUT_S)
        status = self.status()
        return (
            not self.running
            and self.error is None
            and status.get("state") == "stopped"
            and "books" in status
        )

    def shutdown(self) -> None:
        """Last resort on any exit path: the bridge must not outlive the demo."""
        if self.running:
            self.stop.set()
            self._thread.join(BRIDGE_ABORT_TIMEOUT_S)

    def _raise_error(self, fallback: str) -> NoReturn:
        if self.error is not None:
            raise self.error
        raise RuntimeError(fallback)


class DemoPipeline:
    """Owns the node, the bridge and the consumer; leaving the ``with`` block cleans up
    whatever is still running, on every path (errors and Ctrl-C included)."""

    def __init__(self, plan: DemoPlan, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.say = say
        self.board = LedgerBoard()
        self.bootstrap_servers = plan.bootstrap_servers
        self.started_local_broker = False
        self.consumer: LagConsumer | None = None
        self._stack = contextlib.ExitStack()
        self._node: UsdtNode | None = None
        self._runner: BridgeRunner | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    # ------------------------------------------------------------------ start
    def connect(self) -> str:
        """Check the selection and reach Kafka (starting the local broker if needed).

        Runs before the demo takes over Ctrl-C, so an impatient first Ctrl-C still
        interrupts a slow broker start (which then stops the JVM it launched).
        """
        select_events(self.plan.tracepoints or ("*",))  # ConfigError for a bad -t, now
        if self.bootstrap_servers is None:
            self.bootstrap_servers = local_broker(self.say)
            self.started_local_broker = True
        else:
            kafka = KafkaConfig(
                bootstrap_servers=self.bootstrap_servers, startup_timeout_s=KAFKA_CHECK_TIMEOUT_S
            )
            check_reachable(admin_client(kafka), kafka)
        self.say(f"Kafka at {self.bootstrap_servers}; topics {self.plan.topic_prefix}.*")
        return self.bootstrap_servers

    def start(self, interrupted: threading.Event) -> DemoInfo | None:
        """Bring everything up and let the node fire; None if interrupted first."""
        plan = self.plan
        specs = select_events(plan.tracepoints or ("*",))
        names = tuple(spec.name for spec in specs)
        subsystems = [s for s in SUBSYSTEMS if any(spec.subsystem == s for spec in specs)]
        bootstrap_servers = self.bootstrap_servers or self.connect()

        node = self._stack.enter_context(UsdtNode(build_usdt_node()))
        node.start(
            UsdtScenario(
                mode="mixed", loop=True, rate=plan.rate, tracepoints=names, wait_start=True
            )
        )
        self._node = node
        self.say(
            f"Emulated node running (pid {node.pid}); attaching eBPF probes to its "
            f"{len(names)} tracepoints (BCC compiles the program first) ..."
        )

        status_dir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="tb-demo-")))
        runner = BridgeRunner(
            self._settings(node.pid, names), status_dir / "status.json", self.board.record
        )
        self._stack.callback(runner.shutdown)
        self._runner = runner
        runner.start()
        status = runner.wait_attached(interrupted)
        if status is None:
            return None

        consumer = LagConsumer(
            bootstrap_servers,
            all_topics(plan.topic_prefix, subsystems),  # only topics this run writes to
            group_id=f"{plan.topic_prefix}.demo-viewer",
        )
        consumer.start()
        self._stack.callback(consumer.stop)
        self.consumer = consumer
        node.go()
        return DemoInfo(
            bootstrap_servers=bootstrap_servers,
            topic_prefix=plan.topic_prefix,
            node_pid=node.pid,
            rate=plan.rate,
            streams=len(status.get("streams", names)),
            session_id=str(status.get("session_id", "")),
        )

    def _settings(self, pid: int, tracepoints: tuple[str, ...]) -> BridgeSettings:
        overrides = flag_overrides(
            node_id=self.plan.node_id,
            pid=pid,
            tracepoints=tracepoints,
            bootstrap_servers=self.bootstrap_servers,
            topic_prefix=self.plan.topic_prefix,
        )
        overrides["usdt"]["reattach"] = False  # one node run, one session, one set of books
        overrides["heartbeat_interval_s"] = HEARTBEAT_INTERVAL_S
        return load_settings(None, overrides)

    # ------------------------------------------------------------------ while running
    def problem(self) -> str | None:
        """Why the demo cannot go on (a piece died on its own), or None."""
        if self._runner is not None and not self._runner.running:
            error = self._runner.error
            return f"the bridge stopped: {error!r}" if error else "the bridge stopped"
        if self._node is not None and not self._node.running:
            return "the emulated node exited on its own"
        return None

    # ------------------------------------------------------------------ stop
    def stop(self, hurry: threading.Event) -> DemoOutcome:
        """Node first, then let the bridge close the books, then let the consumer catch up."""
        began = time.monotonic()
        report = None
        if self._node is not None:
            try:
                report = self._node.stop(NODE_STOP_TIMEOUT_S)
            except EmulatorError as error:
                log.error("The emulated node did not stop cleanly: %s", error)
        log.debug("Node stopped after %.2f s.", time.monotonic() - began)
        closed = False
        if self._runner is not None:
            closed = self._runner.finish(hurry)
            if self._runner.error is not None:
                raise self._runner.error
        log.debug(
            "Bridge finished after %.2f s (books closed: %s).", time.monotonic() - began, closed
        )
        caught_up = False
        consumer = self.consumer
        if consumer is not None:
            caught_up = consumer.wait_caught_up(CATCH_UP_TIMEOUT_S)
            consumer.stop()
        log.debug(
            "Consumer stopped after %.2f s (caught up: %s).", time.monotonic() - began, caught_up
        )
        return DemoOutcome(
            report=report,
            books=self.board.latest_books(),
            closed=closed,
            consumer=consumer.snapshot() if consumer is not None else None,
            caught_up=caught_up,
        )
