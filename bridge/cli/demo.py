"""``tracebridge demo``: watch every tracepoint of a running (emulated) node flow through
eBPF into Kafka, live, until Ctrl-C; then prove that nothing went missing.

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

from bridge.demo.books import subsystem_of
from bridge.demo.lag import ConsumerSnapshot
from bridge.demo.pipeline import DemoOutcome, DemoPipeline, DemoPlan
from bridge.demo.signals import Interrupts
from bridge.demo.summary import all_balanced, balances, render_summary
from bridge.demo.view import DemoInfo, Viewer, ViewState
from bridge.sinks.kafka.topics import bridge_topic, dead_letter_topic

log = logging.getLogger(__name__)

# Events/s across all selected tracepoints: busy enough to see every stream move, light
# enough to leave room for the broker and the bridge on a 2-core machine.
DEFAULT_RATE = 2000.0
# How often the live view redraws, and how often plain status lines are printed.
REFRESH_S = 1.0
PLAIN_EVERY_S = 2.0
# Exit status when interrupted before anything fired (128 + SIGINT, as shells report).
EXIT_INTERRUPTED = 130


@click.command("demo")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=DEFAULT_RATE,
    show_default=True,
    help="Events/s the emulated node fires across all selected tracepoints (0: flat out).",
)
@click.option(
    "--tracepoints",
    "-t",
    multiple=True,
    help="Glob or subsystem to fire and trace (repeatable; default: all 20).",
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
    rate: float,
    tracepoints: tuple[str, ...],
    bootstrap_servers: str | None,
    topic_prefix: str,
    node_id: str,
    duration: float,
    no_view: bool,
) -> None:
    """Run an emulated Bitcoin Core node, trace it with eBPF into Kafka, and watch.

    The node fires all 20 tracepoints at --rate; the bridge streams them into Kafka;
    a consumer reads them back. Ctrl-C stops the node, the bridge closes its books,
    and a table shows, per stream, that delivered + lost == fired, exactly. The exit
    status is 0 only if every stream balances.

    \b
    Examples:
      tracebridge demo
      tracebridge demo --rate 20000 -t mempool -t 'net:*_message'
      tracebridge demo -b kafka1:9092 --duration 30 --no-view
    """
    plan = DemoPlan(rate, tracepoints, bootstrap_servers, topic_prefix, node_id)
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
                say("Interrupted before the node fired; nothing to account for.")
                return EXIT_INTERRUPTED
            say(f"Attached (session {info.session_id}); the node fires now. Ctrl-C to stop.")
            outcome = _show(pipeline, info, interrupts, out, live=live, duration_s=duration_s)
    return _report(plan, pipeline, info, outcome, out, color=live)


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
        stopping = "stopping: node first, then the bridge closes the books"
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
    try:
        books = pipeline.board.snapshot()
        if pipeline.consumer is not None:
            consumer = pipeline.consumer.snapshot()
    except Exception:  # the view shows less rather than stopping anything
        log.exception("Reading the demo's numbers failed.")
        books = None
    return ViewState(
        info=info,
        phase=phase,
        elapsed_s=time.monotonic() - started,
        duration_s=duration_s or 0.0,
        books=books,
        consumer=consumer,
        log_lines=viewer.recent_log(),
        firing=duration_s is not None,
    )


def _report(
    plan: DemoPlan,
    pipeline: DemoPipeline,
    info: DemoInfo,
    outcome: DemoOutcome,
    out: TextIO,
    *,
    color: bool,
) -> int:
    """Print the final table and what to do next; return the exit status."""
    node_fired = outcome.report.fired if outcome.report is not None else {}
    rows = balances(outcome.books or (), node_fired)
    if not outcome.closed:
        rows = []  # books that were never closed prove nothing
    echo = click.echo
    echo("", file=out)
    echo(f"Final books of session {info.session_id} (its SESSION_END ledger):", file=out)
    for line in render_summary(rows, color=color):
        echo(line, file=out)
    _report_consumer(plan, outcome, out)
    echo("", file=out)
    servers = pipeline.bootstrap_servers
    subsystem = subsystem_of(rows[0].stream) if rows else "mempool"
    echo(
        f"Read the records: tracebridge tail -b {servers} {plan.topic_prefix}.{subsystem}", file=out
    )
    if pipeline.started_local_broker:
        echo(
            f"The Kafka broker at {servers} keeps running; stop it with: tracebridge kafka stop",
            file=out,
        )
    return 0 if all_balanced(rows) else 1


def _report_consumer(plan: DemoPlan, outcome: DemoOutcome, out: TextIO) -> None:
    consumer = outcome.consumer
    if consumer is None:
        return
    if consumer.failure is not None:
        click.echo(f"The demo's consumer stopped early: {consumer.failure}", file=out)
        return
    own = {bridge_topic(plan.topic_prefix), dead_letter_topic(plan.topic_prefix)}
    events = sum(t.decoded for t in consumer.topics if t.topic not in own)
    delivered = sum(book.acked for book in outcome.books or ())
    caught_up = "caught up" if outcome.caught_up else f"NOT caught up (lag {consumer.lag})"
    click.echo(
        f"Read back by consumer group {consumer.group_id}: {events:,} event records "
        f"(the ledger says {delivered:,} delivered), {consumer.decoded:,} records in all, "
        f"{consumer.errors:,} decode errors, {caught_up}.",
        file=out,
    )
