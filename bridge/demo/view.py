"""What the live view shows: one frame for a terminal, or one plain line for logs.

Rendering is a pure function of a :class:`ViewState`, so it can be tested without a
terminal; putting frames on the screen is :mod:`bridge.demo.screen`'s job.

With both sources running side by side, the heading has a line per source, the topic
table splits what was read back by source, and the ledger gets a SOURCE column; with one
source the frame looks as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.demo.books import BooksSnapshot, GroupBooks
from bridge.demo.lag import ConsumerSnapshot
from bridge.demo.leg import LegInfo
from bridge.demo.table import Cell, count, paint, per_second, render_table
from bridge.events.envelope import LOSS_STAGES

# Lag above this many records means the consumer is falling behind, not just batching.
LAG_WARN_RECORDS = 10_000
LOSS_LEGEND = (
    "lost by stage: KERNEL ring full, BRIDGE dropped in the bridge, PRODUCER not acked, "
    "NODE dropped by the node"
)


@dataclass(frozen=True)
class DemoInfo:
    """What stays the same for the whole run (the frame's heading)."""

    bootstrap_servers: str
    topic_prefix: str
    legs: tuple[LegInfo, ...]  # one per source, in the order they are shown

    @property
    def side_by_side(self) -> bool:
        return len(self.legs) > 1


@dataclass(frozen=True)
class LegBooks:
    """One source's ledger as the view shows it; ``books`` None before a heartbeat."""

    source: str
    books: BooksSnapshot | None


@dataclass(frozen=True)
class ViewState:
    """Everything one frame shows."""

    info: DemoInfo
    phase: str
    elapsed_s: float
    duration_s: float  # 0: until Ctrl-C
    books: tuple[LegBooks, ...]  # one per leg, in the legs' order
    consumer: ConsumerSnapshot | None
    log_lines: tuple[str, ...] = ()
    firing: bool = True  # False once the node is stopped: rates would only show the decay


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


# ---------------------------------------------------------------------- frame
def render_frame(state: ViewState, *, color: bool, rows: int | None = None) -> list[str]:
    """The lines of one frame. On a terminal of fewer than ``rows`` lines the topic
    table shrinks to one line first, so the ledgers (side by side: both of them) stay
    on screen; whatever still does not fit is clipped at the bottom by the screen."""
    lines = _frame(state, color, compact_topics=False)
    if rows is not None and len(lines) > rows:
        lines = _frame(state, color, compact_topics=True)
    return lines


def _frame(state: ViewState, color: bool, *, compact_topics: bool) -> list[str]:
    info = state.info
    until = ""
    if state.firing:
        nodes = "nodes" if info.side_by_side else "node"
        until = (
            f"  (stops in {max(0.0, state.duration_s - state.elapsed_s):.0f} s)"
            if state.duration_s
            else f"  (Ctrl-C stops the {nodes} and closes the books)"
        )
    lines = [
        paint("tracebridge demo", "bold", color)
        + f"  {clock(state.elapsed_s)}  "
        + paint(state.phase, "cyan", color)
        + until,
    ]
    for leg in info.legs:
        heading = f"{leg.heading}  ->  Kafka {info.bootstrap_servers}"
        if info.side_by_side:
            heading = f"{paint(leg.source, 'bold', color)}: {heading} as node {leg.node_id}"
        lines.append(heading)
    lines.append("")
    sources = [leg.source for leg in info.legs] if info.side_by_side else []
    if compact_topics:
        lines += _topic_summary_lines(state.consumer, color, rates=state.firing, sources=sources)
    else:
        lines += _topic_lines(state.consumer, color, rates=state.firing, sources=sources)
    lines.append("")
    if info.side_by_side:
        lines += _side_by_side_ledger_lines(state.books, color, rates=state.firing)
    else:
        only = state.books[0].books if state.books else None
        lines += _ledger_lines(only, color, rates=state.firing)
    if state.log_lines:
        lines.append("")
        lines += [paint(line, "dim", color) for line in state.log_lines]
    return lines


def _topic_lines(
    consumer: ConsumerSnapshot | None, color: bool, *, rates: bool, sources: Sequence[str] = ()
) -> list[str]:
    """Per topic: written, read back (and, side by side, read back per source), lag."""
    if consumer is None or (not consumer.topics and consumer.failure is None):
        return ["Kafka topics: waiting for the consumer"]
    rows: list[list[Cell | str]] = []
    for topic in consumer.topics:
        lag_style = "yellow" if (topic.lag or 0) > LAG_WARN_RECORDS else ""
        rows.append(
            [
                topic.topic,
                per_second(topic.per_s if rates else None),
                count(topic.records),
                count(topic.decoded),
                *(count(topic.by_source.get(source, 0)) for source in sources),
                Cell(count(topic.errors), "red" if topic.errors else ""),
                Cell(count(topic.lag), lag_style),
            ]
        )
    headers = ["TOPIC", "WRITTEN/S", "WRITTEN", "READ BACK"]
    headers += [f"FROM {source.upper()}" for source in sources]
    lines = render_table([*headers, "DECODE ERR", "LAG"], rows, color=color)
    health = f"consumer group {consumer.group_id}: every record decoded with the committed schemas"
    return [*lines, _consumer_health(consumer, health, color)]


def _topic_summary_lines(
    consumer: ConsumerSnapshot | None, color: bool, *, rates: bool, sources: Sequence[str] = ()
) -> list[str]:
    """The topic table in one line, for a terminal too short for the whole frame."""
    if consumer is None or (not consumer.topics and consumer.failure is None):
        return ["Kafka topics: waiting for the consumer"]
    topics = consumer.topics
    written = [t.records for t in topics]
    total = None if any(w is None for w in written) else sum(w or 0 for w in written)
    speeds = [t.per_s for t in topics]
    speed = None if not rates or any(v is None for v in speeds) else sum(v or 0 for v in speeds)
    per_source = ", ".join(f"{s} {consumer.decoded_from(s):,}" for s in sources)
    line = (
        f"Kafka: {len(topics)} topics, written {count(total)} ({per_second(speed)}/s), "
        f"read back {consumer.decoded:,}{f' ({per_source})' if per_source else ''}, "
        f"lag {count(consumer.lag)}, decode errors {consumer.errors:,}"
    )
    return [_consumer_health(consumer, line, color)]


def _consumer_health(consumer: ConsumerSnapshot, healthy: str, color: bool) -> str:
    if consumer.failure is not None:
        return paint(f"consumer stopped: {consumer.failure}", "red", color)
    if consumer.last_error is not None:
        return healthy + paint(f"; last problem: {consumer.last_error}", "yellow", color)
    return healthy


def _ledger_lines(books: BooksSnapshot | None, color: bool, *, rates: bool) -> list[str]:
    if books is None:
        return ["Ledger: waiting for the bridge's first heartbeat"]
    headers = ["SUBSYSTEM", "FIRED", "DELIVERED", "PER SEC", "IN FLIGHT"]
    headers += [stage.upper() for stage in LOSS_STAGES]
    rows = [_ledger_row(group, color, rates) for group in books.subsystems]
    rows.append(_ledger_row(books.total, color, rates, bold=True))
    lines = render_table(headers, rows, color=color)
    lines.append(
        f"ledger of heartbeat {books.heartbeats}, {books.age_s:.1f} s old "
        "(per stream: fired = delivered + in flight + lost)"
    )
    lines.append(LOSS_LEGEND)
    return lines


def _side_by_side_ledger_lines(legs: Sequence[LegBooks], color: bool, *, rates: bool) -> list[str]:
    """One table for all sources: each one's subsystems and its own total."""
    headers = ["SOURCE", "SUBSYSTEM", "FIRED", "DELIVERED", "PER SEC", "IN FLIGHT"]
    headers += [stage.upper() for stage in LOSS_STAGES]
    rows: list[list[Cell]] = []
    ages = []
    for leg in legs:
        source = Cell(leg.source, "bold")
        books = leg.books
        if books is None:
            rows.append([source, Cell("(no heartbeat yet)", "dim")])
            ages.append(f"{leg.source} none yet")
            continue
        rows += [[source, *_ledger_row(group, color, rates)] for group in books.subsystems]
        rows.append([source, *_ledger_row(books.total, color, rates, bold=True)])
        ages.append(f"{leg.source} heartbeat {books.heartbeats}, {books.age_s:.1f} s old")
    lines = render_table(headers, rows, color=color, left_columns=2)
    lines.append(f"ledgers: {'; '.join(ages)} (per stream: fired = delivered + in flight + lost)")
    lines.append(LOSS_LEGEND)
    return lines


def _ledger_row(group: GroupBooks, color: bool, rates: bool, bold: bool = False) -> list[Cell]:
    base = "bold" if bold else ""
    cells = [
        Cell(group.name, base),
        Cell(count(group.fired), base),
        Cell(count(group.delivered), "green" if group.delivered else base),
        Cell(per_second(group.delivered_per_s if rates else None), base),
        Cell(count(group.in_flight), base),
    ]
    for stage in LOSS_STAGES:
        lost = group.lost.get(stage, 0)
        cells.append(Cell(count(lost), "red" if lost else base))
    return cells


# ---------------------------------------------------------------------- plain
def plain_line(state: ViewState) -> str:
    """One log-friendly line with the same numbers, for pipes and --no-view."""
    parts = [f"demo {clock(state.elapsed_s)} {state.phase}:"]
    for leg in state.books:
        text = _books_text(leg.books, firing=state.firing)
        parts.append(f"{leg.source} {text}" if len(state.books) > 1 else text)
    consumer = state.consumer
    if consumer is None:
        parts.append("consumer: not started")
    elif consumer.failure is not None:
        parts.append(f"consumer: stopped ({consumer.failure})")
    else:
        parts.append(
            f"consumer: read back {consumer.decoded:,}, lag {count(consumer.lag)}, "
            f"decode errors {consumer.errors:,}"
        )
    return " ".join(parts)


def _books_text(books: BooksSnapshot | None, *, firing: bool) -> str:
    if books is None:
        return "no heartbeat yet;"
    total = books.total
    losses = ", ".join(f"{stage} {total.lost.get(stage, 0):,}" for stage in LOSS_STAGES)
    rate = f" ({per_second(total.delivered_per_s)}/s)" if firing else ""
    return (
        f"fired {total.fired:,}, delivered {total.delivered:,}{rate}, "
        f"in flight {total.in_flight:,}, lost {total.lost_total:,} ({losses});"
    )
