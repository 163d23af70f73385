"""``tracebridge demo``: watch every event of a running (emulated) node flow into Kafka,
live, until Ctrl-C; then prove that nothing went missing.

The node is traced with eBPF (``--source usdt``), subscribed to over Cap'n Proto IPC
(``--source ipc``), or both side by side (``--source both``: two emulated nodes, two
bridges, one set of topics), which is the RFC's comparison of the two in miniature.

This module is the command and its sequence; the pieces live in :mod:`bridge.demo`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TextIO

import click

from bridge.demo.books import BooksSnapshot
from bridge.demo.lag import ConsumerSnapshot
from bridge.demo.pipeline import DemoOutcome, DemoPipeline
from bridge.demo.plan import SOURCE_CHOICES, DemoPlan, SourceChoice
from bridge.demo.report import render_report
from bridge.demo.screen import Viewer
from bridge.demo.signals import Interrupts
from bridge.demo.view import DemoInfo, LegBooks, ViewState

log = logging.getLogger(__name__)

# Events/s across all selected tracepoints (IPC: across its four streams), per node:
# busy enough to see every stream move, light enough to leave room for the broker and
# the bridge on a 2-core machine.
DEFAULT_RATE = 2000.0
# How often the live view redraws, and how often plain status lines are printed.
REFRESH_S = 1.0
PLAIN_EVERY_S = 2.0
# Exit status when interrupted before anything fired (128 + SIGINT, as shells report).
EXIT_INTERRUPTED = 130


@click.command("demo")
@click.option(
    "--source",
    type=click.Choice(SOURCE_CHOICES),
    default="usdt",
    show_default=True,
    help="Trace the emulated node with eBPF (usdt), subscribe to an emulated node over "
    "Cap'n Proto IPC (ipc), or run both pipelines side by side (both).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=DEFAULT_RATE,
    show_default=True,
    help="Events/s each emulated node fires, across all selected tracepoints or, over "
    "IPC, split evenly across its 4 streams (0: flat out).",
)
@click.option(
    "--tracepoints",
    "-t",
    multiple=True,
    help="USDT glob or subsystem to fire and trace (repeatable; default: all 20).",
)
@click.option(
    "--bootstrap-servers",
    "-b",
    help="Kafka brokers, host:port[,...]. Default: start (or reuse) the local broker "
    "on 127.0.0.1:19092, left running afterwards.",
)
@click.option("--topic-prefix", default="tracebridge", show_default=True, help="Topic prefix.")
@click.option("--node-id", default="demo-node", show_default=True, help="Node name in records.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to fire before stopping by itself; 0 (default): until Ctrl-C.",
)
@click.option("--no-view", is_flag=True, help="Plain status lines instead of the live view.")
def demo_command(
    source: SourceChoice,
    rate: float,
    tracepoints: tuple[str, ...],
    bootstrap_servers: str | None,
    topic_prefix: str,
    node_id: str,
    duration: float,
    no_view: bool,
) -> None:
    """Run an emulated Bitcoin Core node, stream its events into Kafka, and watch.

    With --source usdt the node fires all 20 tracepoints at --rate and the bridge
    traces them with eBPF; with --source ipc the node serves its Cap'n Proto socket
    and the bridge subscribes to it; --source both runs the two side by side. A
    consumer reads the records back. Ctrl-C stops the nodes, the bridges close their
    books, and tables show, per stream, that delivered + lost == fired, exactly, and
    that the bridge counted what the node says it fired (or sent). The exit status is
    0 only if every stream balances.

    \b
    Examples:
      tracebridge demo
      tracebridge demo --rate 20000 -t mempool -t 'net:*_message'
      tracebridge demo --source ipc --rate 4000
      tracebridge demo --source both --duration 60
      tracebridge demo -b kafka1:9092 --duration 30 --no-view
    """
    if tracepoints and source == "ipc":
        raise click.UsageError("-t selects USDT tracepoints; it has no meaning with --source ipc")
    plan = DemoPlan(rate, tracepoints, bootstrap_servers, topic_prefix, node_id, source)
    out = sys.stdout
    live = not no_view and out.isatty() and os.environ.get("TERM", "") != "dumb"
    code = run_demo(plan, out, live=live, duration_s=duration)
    sys.exit(code)


def run_demo(plan: DemoPlan, out: TextIO, *, live: bool, duration_s: float) -> int:
    """The whole demo; returns the exit status."""

    def say(message: str) -> None:
        click.echo(f"==> {message}", file=out)

    interrupts = Interrupts()
    with DemoPipeline(plan, say) as pipeline:
        pipeline.connect()  # before Ctrl-C is ours: see DemoPipeline.connect
        with interrupts.installed():
            info = pipeline.start(interrupts.first)
            if info is None:  # leaving the blocks stops the bridge and kills the node
                nodes = "nodes" if len(pipeline.legs) > 1 else "node"
                say(f"Interrupted before the {nodes} fired; nothing to account for.")
                return EXIT_INTERRUPTED
            say(_attached(info))
            outcome = _show(pipeline, info, interrupts, out, live=live, duration_s=duration_s)
    return _report(plan, pipeline, outcome, out, color=live)


def _attached(info: DemoInfo) -> str:
    if not info.side_by_side:
        return f"Attached (session {info.legs[0].session_id}); the node fires now. Ctrl-C to stop."
    sessions = ", ".join(f"{leg.source} session {leg.session_id}" for leg in info.legs)
    return f"Attached ({sessions}); the nodes fire now. Ctrl-C to stop."


def _show(
    pipeline: DemoPipeline,
    info: DemoInfo,
    interrupts: Interrupts,
    out: TextIO,
    *,
    live: bool,
    duration_s: float,
) -> DemoOutcome:
    """The view from the first event to the closed books; the view is gone afterwards."""
    viewer = Viewer(out, live=live, plain_every_s=PLAIN_EVERY_S)
    try:
        started = time.monotonic()
        _watch(pipeline, viewer, info, interrupts.first, started, duration_s)
        stopping = (
            "stopping: nodes first, then the bridges close the books"
            if info.side_by_side
            else "stopping: node first, then the bridge closes the books"
        )
        viewer.show(_state(pipeline, viewer, info, stopping, started), force=True)
        outcome = pipeline.stop(interrupts.second)
        viewer.show(_state(pipeline, viewer, info, "stopped", started), force=True)
    finally:
        viewer.close()
    return outcome


def _watch(
    pipeline: DemoPipeline,
    viewer: Viewer,
    info: DemoInfo,
    interrupted: threading.Event,
    started: float,
    duration_s: float,
) -> None:
    """Refresh the view until Ctrl-C, the duration, or a piece of the pipeline dying."""
    while True:
        viewer.show(_state(pipeline, viewer, info, "firing", started, duration_s))
        wait = REFRESH_S
        if duration_s:
            left = duration_s - (time.monotonic() - started)
            if left <= 0:
                return
            wait = min(wait, left)
        if interrupted.wait(wait):
            return
        problem = pipeline.problem()
        if problem is not None:
            log.error("Stopping the demo: %s.", problem)
            return


def _state(
    pipeline: DemoPipeline,
    viewer: Viewer,
    info: DemoInfo,
    phase: str,
    started: float,
    duration_s: float | None = None,
) -> ViewState:
    """What the view shows now; ``duration_s`` None once the node no longer fires."""
    consumer: ConsumerSnapshot | None = None
    books = []
    for leg in pipeline.legs:
        snapshot: BooksSnapshot | None = None
        try:
            snapshot = leg.board.snapshot()
        except Exception:  # the view shows less rather than stopping anything
            log.exception("Reading the demo's numbers failed.")
        books.append(LegBooks(leg.source, snapshot))
    try:
        if pipeline.consumer is not None:
            consumer = pipeline.consumer.snapshot()
    except Exception:
        log.exception("Reading the demo's consumer failed.")
    return ViewState(
        info=info,
        phase=phase,
        elapsed_s=time.monotonic() - started,
        duration_s=duration_s or 0.0,
        books=tuple(books),
        consumer=consumer,
        log_lines=viewer.recent_log(),
        firing=duration_s is not None,
    )


def _report(
    plan: DemoPlan, pipeline: DemoPipeline, outcome: DemoOutcome, out: TextIO, *, color: bool
) -> int:
    """Print the final tables and what to do next; return the exit status."""
    lines, balanced = render_report(
        outcome,
        topic_prefix=plan.topic_prefix,
        bootstrap_servers=pipeline.bootstrap_servers or "",
        started_local_broker=pipeline.started_local_broker,
        color=color,
    )
    for line in lines:
        click.echo(line, file=out)
    return 0 if balanced else 1
