"""The live view: one frame per second on a terminal, or a plain line now and then.

Rendering is a pure function of a :class:`ViewState`, so it can be tested without a
terminal. The screen is redrawn in place with plain ANSI (cursor up, clear to end of
line); line wrapping is switched off while the view runs, so a narrow terminal clips
lines instead of breaking the redraw. :class:`Viewer` never raises: a failing live view
falls back to plain lines, and failing plain lines fall silent; the pipeline it shows
keeps running either way.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from bridge.demo.books import BooksSnapshot, GroupBooks
from bridge.demo.lag import ConsumerSnapshot
from bridge.demo.logtail import LogTail, logs_held
from bridge.demo.table import Cell, count, paint, per_second, render_table
from bridge.events.envelope import LOSS_STAGES

log = logging.getLogger(__name__)

# ANSI: hide/show the cursor, auto-wrap off/on, clear to end of line / of screen.
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
WRAP_OFF, WRAP_ON = "\x1b[?7l", "\x1b[?7h"
CLEAR_LINE, CLEAR_BELOW = "\x1b[K", "\x1b[J"
# Terminal rows kept free below the frame, so the cursor never scrolls the frame's top
# line off screen (after which moving up could not reach it to redraw).
SPARE_ROWS = 1
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
    node_pid: int
    rate: float
    streams: int
    session_id: str


@dataclass(frozen=True)
class ViewState:
    """Everything one frame shows."""

    info: DemoInfo
    phase: str
    elapsed_s: float
    duration_s: float  # 0: until Ctrl-C
    books: BooksSnapshot | None
    consumer: ConsumerSnapshot | None
    log_lines: tuple[str, ...] = ()
    firing: bool = True  # False once the node is stopped: rates would only show the decay


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


# ---------------------------------------------------------------------- frame
def render_frame(state: ViewState, *, color: bool) -> list[str]:
    """The lines of one frame."""
    info = state.info
    until = ""
    if state.firing:
        until = (
            f"  (stops in {max(0.0, state.duration_s - state.elapsed_s):.0f} s)"
            if state.duration_s
            else "  (Ctrl-C stops the node and closes the books)"
        )
    lines = [
        paint("tracebridge demo", "bold", color)
        + f"  {clock(state.elapsed_s)}  "
        + paint(state.phase, "cyan", color)
        + until,
        f"emulated bitcoind pid {info.node_pid}: {info.streams} tracepoints at "
        f"{info.rate:,.0f} events/s  ->  eBPF  ->  Kafka {info.bootstrap_servers}",
        "",
    ]
    lines += _topic_lines(state.consumer, color, rates=state.firing)
    lines.append("")
    lines += _ledger_lines(state.books, color, rates=state.firing)
    if state.log_lines:
        lines.append("")
        lines += [paint(line, "dim", color) for line in state.log_lines]
    return lines


def _topic_lines(consumer: ConsumerSnapshot | None, color: bool, *, rates: bool) -> list[str]:
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
                Cell(count(topic.errors), "red" if topic.errors else ""),
                Cell(count(topic.lag), lag_style),
            ]
        )
    lines = render_table(
        ["TOPIC", "WRITTEN/S", "WRITTEN", "READ BACK", "DECODE ERR", "LAG"], rows, color=color
    )
    health = f"consumer group {consumer.group_id}: every record decoded with the committed schemas"
    if consumer.failure is not None:
        health = paint(f"consumer stopped: {consumer.failure}", "red", color)
    elif consumer.last_error is not None:
        health += paint(f"; last problem: {consumer.last_error}", "yellow", color)
    return [*lines, health]


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
    books = state.books
    if books is None:
        parts.append("no heartbeat yet;")
    else:
        total = books.total
        losses = ", ".join(f"{stage} {total.lost.get(stage, 0):,}" for stage in LOSS_STAGES)
        rate = f" ({per_second(total.delivered_per_s)}/s)" if state.firing else ""
        parts.append(
            f"fired {total.fired:,}, delivered {total.delivered:,}{rate}, "
            f"in flight {total.in_flight:,}, lost {total.lost_total:,} ({losses});"
        )
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


# ---------------------------------------------------------------------- output
class LiveScreen:
    """Redraws a block of lines in place at the bottom of the terminal's output."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._drawn = 0
        out.write(HIDE_CURSOR + WRAP_OFF)
        out.flush()

    def draw(self, lines: Sequence[str]) -> None:
        rows = shutil.get_terminal_size().lines - SPARE_ROWS
        lines = list(lines)[: max(1, rows)]
        up = f"\r\x1b[{self._drawn}A" if self._drawn else "\r"
        body = "".join(f"{line}{CLEAR_LINE}\n" for line in lines)
        self._out.write(up + body + CLEAR_BELOW)
        self._out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self._out.write(WRAP_ON + SHOW_CURSOR)
        self._out.flush()


class Viewer:
    """Shows states live (``live``) or as plain lines every ``plain_every_s``."""

    def __init__(self, out: TextIO, *, live: bool, plain_every_s: float) -> None:
        self._out = out
        self._plain_every_s = plain_every_s
        self._next_plain = 0.0
        self._broken = False
        self._tail = LogTail()
        self._logs = contextlib.ExitStack()
        self._screen: LiveScreen | None = None
        if live:
            try:
                self._logs.enter_context(logs_held(self._tail))
                self._screen = LiveScreen(out)
            except Exception:
                self._degrade()

    @property
    def live(self) -> bool:
        return self._screen is not None

    def recent_log(self) -> tuple[str, ...]:
        return self._tail.recent() if self.live else ()

    def show(self, state: ViewState, *, force: bool = False) -> None:
        """Draw ``state``; plain lines only when due (or ``force``)."""
        if self._broken:
            return
        try:
            if self._screen is not None:
                self._screen.draw(render_frame(state, color=True))
                return
            now = time.monotonic()
            if force or now >= self._next_plain:
                self._next_plain = now + self._plain_every_s
                self._out.write(plain_line(state) + "\n")
                self._out.flush()
        except Exception:
            if self._screen is not None:
                self._degrade()
            else:
                log.exception("The demo's status lines failed; continuing without them.")
                self._broken = True

    def close(self) -> None:
        """Give the terminal back (cursor, wrapping, and the log lines held meanwhile)."""
        screen, self._screen = self._screen, None
        try:
            if screen is not None:
                screen.close()
        except Exception:
            log.debug("Restoring the terminal failed.", exc_info=True)
        finally:
            self._logs.close()

    def _degrade(self) -> None:
        self.close()
        log.exception("The live view failed; showing plain status lines instead.")
