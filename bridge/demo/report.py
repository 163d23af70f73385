"""What the demo prints after the view is gone: per source the final books and the
verdict, what the consumer read back, and what to run next.

Each source has its own proof (USDT: the probes' count against the node's count per
tracepoint; IPC: see :mod:`bridge.demo.ipc_summary`), so each leg gets its own section;
side by side, a short table then puts the two pipelines next to each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.demo.books import subsystem_of
from bridge.demo.ipc_summary import ipc_verdict, render_ipc_summary
from bridge.demo.lag import ConsumerSnapshot
from bridge.demo.leg import LegOutcome
from bridge.demo.pipeline import DemoOutcome
from bridge.demo.summary import all_balanced, balances, render_summary
from bridge.demo.table import Cell, count, render_table
from bridge.emulator import EmulatorReport
from bridge.emulator.ipc_report import IpcReport
from bridge.sinks.kafka.topics import bridge_topic, dead_letter_topic

TITLES = {"usdt": "USDT pipeline (eBPF)", "ipc": "IPC pipeline (Cap'n Proto)"}


@dataclass(frozen=True)
class LegVerdict:
    """One leg's section of the report and whether it proves every event accounted for."""

    outcome: LegOutcome
    lines: list[str]
    balanced: bool

    @property
    def books(self) -> tuple[int, int, int]:
        """(fired, delivered, lost) over the leg's final books; zeros without any."""
        books = self.outcome.books or ()
        return (
            sum(b.fired for b in books),
            sum(b.acked for b in books),
            sum(sum(b.lost.values()) for b in books),
        )


def leg_verdict(outcome: LegOutcome, *, color: bool) -> LegVerdict:
    """The leg's summary table(s) and verdict; books never closed prove nothing."""
    books = outcome.books if outcome.closed and outcome.books else ()
    report = outcome.report
    if outcome.info.source == "ipc":
        verdict = ipc_verdict(books, report if isinstance(report, IpcReport) else None)
        return LegVerdict(outcome, render_ipc_summary(verdict, color=color), verdict.balanced)
    fired = report.fired if isinstance(report, EmulatorReport) else {}
    rows = balances(books, fired) if books else []
    return LegVerdict(outcome, render_summary(rows, color=color), all_balanced(rows))


def render_report(
    outcome: DemoOutcome,
    *,
    topic_prefix: str,
    bootstrap_servers: str,
    started_local_broker: bool,
    color: bool,
) -> tuple[list[str], bool]:
    """The report's lines, and True if every leg balanced (the exit status follows)."""
    verdicts = [leg_verdict(leg, color=color) for leg in outcome.legs]
    side_by_side = len(verdicts) > 1
    lines: list[str] = []
    for verdict in verdicts:
        info = verdict.outcome.info
        books_of = f"books of session {info.session_id} (its SESSION_END ledger):"
        heading = f"Final {books_of}"
        if side_by_side:
            heading = f"{TITLES[info.source]}, node {info.node_id}: final {books_of}"
        lines += ["", heading, *verdict.lines]
    if side_by_side:
        lines += ["", "Side by side:", *_side_by_side(verdicts, color=color), ""]
    lines += _consumer_lines(outcome, topic_prefix)
    lines.append("")
    first = next((leg.books[0].stream for leg in outcome.legs if leg.books), "mempool:added")
    lines.append(
        f"Read the records: tracebridge tail -b {bootstrap_servers} "
        f"{topic_prefix}.{subsystem_of(first)}"
    )
    if started_local_broker:
        lines.append(
            f"The Kafka broker at {bootstrap_servers} keeps running; stop it with: "
            "tracebridge kafka stop"
        )
    return lines, all(v.balanced for v in verdicts)


def _side_by_side(verdicts: Sequence[LegVerdict], *, color: bool) -> list[str]:
    rows: list[list[Cell | str]] = []
    for verdict in verdicts:
        info = verdict.outcome.info
        fired, delivered, lost = verdict.books
        rows.append(
            [
                info.source,
                info.node_id,
                count(len(info.streams)),
                count(fired),
                count(delivered),
                Cell(count(lost), "red" if lost else ""),
                Cell("yes", "green") if verdict.balanced else Cell("NO", "red"),
            ]
        )
    headers = ["SOURCE", "NODE ID", "STREAMS", "FIRED", "DELIVERED", "LOST", "BALANCED"]
    return render_table(headers, rows, color=color, left_columns=2)


def _consumer_lines(outcome: DemoOutcome, topic_prefix: str) -> list[str]:
    consumer = outcome.consumer
    if consumer is None:
        return []
    if consumer.failure is not None:
        return [f"The demo's consumer stopped early: {consumer.failure}"]
    own = {bridge_topic(topic_prefix), dead_letter_topic(topic_prefix)}
    caught_up = "caught up" if outcome.caught_up else f"NOT caught up (lag {consumer.lag})"
    return [
        f"Read back by consumer group {consumer.group_id}: {_read_back(outcome, consumer, own)}, "
        f"{consumer.decoded:,} records in all, {consumer.errors:,} decode errors, {caught_up}."
    ]


def _read_back(outcome: DemoOutcome, consumer: ConsumerSnapshot, own: set[str]) -> str:
    """Event records read back against the ledger's delivered count, per source when
    there are several (told apart by the records' ``source`` header)."""
    events = [t.topic for t in consumer.topics if t.topic not in own]
    parts = []
    for leg in outcome.legs:
        delivered = sum(book.acked for book in leg.books or ())
        if len(outcome.legs) == 1:
            read = sum(t.decoded for t in consumer.topics if t.topic in events)
            return f"{read:,} event records (the ledger says {delivered:,} delivered)"
        read = consumer.decoded_from(leg.info.source, events)
        parts.append(
            f"{leg.info.source} {read:,} event records (its ledger says {delivered:,} delivered)"
        )
    return ", ".join(parts)
