"""Start and stop the demo's pieces in the order that keeps the books exact.

Start: the broker (unless one was given) -> where the topics end now (the consumer
starts there) -> per source, the emulated node, started but held (``--wait-start``),
and the bridge in a background thread -> wait until every bridge's status file says
``attached`` -> the consumer -> every node's ``go()``. Nothing fires before every
bridge can see it, so each node's count of what it fired (or sent) and its bridge's
must agree exactly.

Stop: the nodes first. Their reports are then final, and each bridge sees its node go
(the traced process exits, the IPC connection closes), which ends the session the
ordinary way: drain to the end, settle every record with Kafka, write the SESSION_END
ledger. A bridge's own stop event is only a fallback (a second Ctrl-C, or a session
that does not end in time).

The per-source parts (which node, which source) are in :mod:`bridge.demo.leg` and its
node adapters; this module only sequences them, one leg or two side by side.
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
from typing import Self

from bridge.cli.kafka_target import local_broker
from bridge.config import load_settings
from bridge.demo.lag import ConsumerSnapshot, LagConsumer, topic_ends
from bridge.demo.leg import DemoLeg, EmulatedNode, LegInfo, LegOutcome
from bridge.demo.plan import DemoPlan, SourceName
from bridge.demo.usdt_leg import UsdtDemoNode
from bridge.demo.view import DemoInfo
from bridge.events.catalog import TOPIC_SUBSYSTEMS
from bridge.sinks.kafka.security import client_security
from bridge.sinks.kafka.topics import admin_client, all_topics, check_reachable

log = logging.getLogger(__name__)

# How long the consumer may take to read back the last records before the summary.
CATCH_UP_TIMEOUT_S = 15.0
# How long a given broker may take to answer before the demo gives up on it.
KAFKA_CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DemoOutcome:
    """Everything the summary needs, gathered after the stop."""

    legs: tuple[LegOutcome, ...]
    consumer: ConsumerSnapshot | None
    caught_up: bool


def emulated_node(plan: DemoPlan, source: SourceName) -> EmulatedNode:
    """The emulated node for one source of the plan."""
    if source == "ipc":
        from bridge.demo.ipc_leg import IpcDemoNode  # the IPC emulator only when asked for

        return IpcDemoNode(plan.rate)
    return UsdtDemoNode(plan.rate, plan.tracepoints)


class DemoPipeline:
    """Owns the legs and the consumer; leaving the ``with`` block cleans up whatever is
    still running, on every path (errors and Ctrl-C included)."""

    def __init__(self, plan: DemoPlan, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.say = say
        self.bootstrap_servers = plan.bootstrap_servers
        self.started_local_broker = False
        self.security: dict[str, str] = {}  # the local broker is plaintext
        self.consumer: LagConsumer | None = None
        # A bad -t is a ConfigError here, before any broker or node starts.
        self.legs = tuple(DemoLeg(emulated_node(plan, source), plan) for source in plan.sources)
        self._stack = contextlib.ExitStack()

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
        """Reach Kafka (starting the local broker if needed).

        Runs before the demo takes over Ctrl-C, so an impatient first Ctrl-C still
        interrupts a slow broker start (which then stops the JVM it launched).
        """
        if self.bootstrap_servers is None:
            self.bootstrap_servers = local_broker(self.say)
            self.started_local_broker = True
        else:
            # The bridges' kafka.tls / kafka.sasl come from the environment; so do ours.
            kafka = load_settings(
                None,
                {
                    "kafka": {
                        "bootstrap_servers": self.bootstrap_servers,
                        "startup_timeout_s": KAFKA_CHECK_TIMEOUT_S,
                    }
                },
            ).kafka
            self.security = client_security(kafka)
            check_reachable(admin_client(kafka), kafka)
        self.say(f"Kafka at {self.bootstrap_servers}; topics {self.plan.topic_prefix}.*")
        return self.bootstrap_servers

    def start(self, interrupted: threading.Event) -> DemoInfo | None:
        """Bring everything up and let the nodes fire; None if interrupted first."""
        bootstrap_servers = self.bootstrap_servers or self.connect()
        workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="tb-demo-")))
        # Before any bridge starts: the consumer reads from here, so it sees every record
        # of this run, also those written before the nodes fire.
        start_at = topic_ends(bootstrap_servers, all_topics(self.plan.topic_prefix), self.security)
        for leg in self.legs:  # every node held and every bridge attaching at once
            leg.start(self._stack, workdir, bootstrap_servers, self.say)
        infos: list[LegInfo] = []
        for leg in self.legs:
            info = leg.wait_attached(interrupted)
            if info is None:
                return None
            infos.append(info)

        written = set().union(*(info.subsystems for info in infos))
        consumer = LagConsumer(
            bootstrap_servers,
            # only the topics this run writes to, in the catalogue's order
            all_topics(self.plan.topic_prefix, [s for s in TOPIC_SUBSYSTEMS if s in written]),
            group_id=f"{self.plan.topic_prefix}.demo-viewer",
            start_at=start_at,
            security=self.security,
        )
        consumer.start()
        self._stack.callback(consumer.stop)
        self.consumer = consumer
        for leg in self.legs:
            leg.go()
        return DemoInfo(
            bootstrap_servers=bootstrap_servers,
            topic_prefix=self.plan.topic_prefix,
            legs=tuple(infos),
        )

    # ------------------------------------------------------------------ while running
    def problem(self) -> str | None:
        """Why the demo cannot go on (a piece died on its own), or None."""
        for leg in self.legs:
            problem = leg.problem()
            if problem is not None:
                return problem
        return None

    # ------------------------------------------------------------------ stop
    def stop(self, hurry: threading.Event) -> DemoOutcome:
        """Nodes first, then let the bridges close their books, then let the consumer
        catch up."""
        began = time.monotonic()
        for leg in self.legs:
            leg.stop_node()
        log.debug("Nodes stopped after %.2f s.", time.monotonic() - began)
        # The bridges close their sessions concurrently (each in its own thread); this
        # only collects them one after the other.
        outcomes = tuple(leg.finish(hurry) for leg in self.legs)
        log.debug(
            "Bridges finished after %.2f s (books closed: %s).",
            time.monotonic() - began,
            [outcome.closed for outcome in outcomes],
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
            legs=outcomes,
            consumer=consumer.snapshot() if consumer is not None else None,
            caught_up=caught_up,
        )
