"""Text reports: the audit table, and a replay's gap report.

The audit table has one row per node and stream (sessions summed), the numbers a reader
checks first: fired, delivered, lost by stage, duplicates, unexplained, and a status
(FAIL over open over ok). Records the ledger held in doubt are settled by the topic: the
ones it does not hold are shown as producer losses, with a note line per session.
Problems and warnings follow, one line each, per session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bridge.demo.table import Cell, count, render_table
from bridge.events.envelope import LOSS_STAGES
from bridge.replay.audit import AuditReport, StreamAudit

MAX_GAP_LINES = 10
STATUS_STYLE = {"ok": "green", "open": "yellow", "FAIL": "red"}
_RANK = {"ok": 0, "open": 1, "FAIL": 2}


@dataclass
class _Row:
    node: str
    stream: str
    sessions: int = 0
    fired: int | None = 0
    delivered: int = 0
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOSS_STAGES, 0))
    duplicates: int = 0
    unexplained: int = 0
    status: str = "ok"

    def add(self, audit: StreamAudit) -> None:
        gaps = audit.gaps
        self.sessions += 1
        ledger = gaps.ledger
        self.fired = None if self.fired is None or ledger is None else self.fired + ledger.fired
        self.delivered += gaps.delivered
        for stage in LOSS_STAGES:
            self.lost[stage] += audit.lost.get(stage, 0)
        if ledger is not None:  # records in doubt that the topic does not hold
            self.lost["producer"] += ledger.in_doubt - audit.in_doubt_written
        self.duplicates += gaps.duplicates
        self.unexplained += gaps.unexplained
        if _RANK[audit.status] > _RANK[self.status]:
            self.status = audit.status


def _rows(streams: Iterable[StreamAudit]) -> list[_Row]:
    rows: dict[tuple[str, str], _Row] = {}
    for audit in streams:
        node, _, stream = audit.key
        row = rows.get((node, stream))
        if row is None:
            row = rows[(node, stream)] = _Row(node, stream)
        row.add(audit)
    return [rows[key] for key in sorted(rows)]


def format_audit(report: AuditReport, *, color: bool = False, sessions: bool = False) -> str:
    """The audit table, then every problem and warning."""
    headers = (
        "node",
        "stream",
        "sessions",
        "fired",
        "delivered",
        *(f"lost {stage}" for stage in LOSS_STAGES),
        "dup",
        "unexplained",
        "status",
    )
    table: list[tuple[Cell | str, ...]] = []
    for row in _rows(report.streams):
        table.append(
            (
                row.node,
                row.stream,
                count(row.sessions),
                count(row.fired),
                count(row.delivered),
                *(count(row.lost[stage]) for stage in LOSS_STAGES),
                count(row.duplicates),
                count(row.unexplained),
                Cell(row.status, STATUS_STYLE[row.status]),
            )
        )
    lines = render_table(headers, table, color=color, left_columns=2)
    for audit in report.streams:
        node, session, stream = audit.key
        where = f"{node} {stream} session {session}"
        lines.extend(f"FAIL {where}: {problem}" for problem in audit.problems)
        lines.extend(f"warning {where}: {warning}" for warning in audit.warnings)
        ledger = audit.gaps.ledger
        if ledger is not None and ledger.in_doubt:
            written = audit.in_doubt_written
            lines.append(
                f"note {where}: {ledger.in_doubt:,} record(s) timed out after they were sent "
                f"(in doubt): {written:,} are in the topic, {ledger.in_doubt - written:,} "
                "counted above as lost at the producer"
            )
        if sessions and not audit.problems and not audit.warnings:
            lines.append(f"{audit.status} {where}: {audit.gaps.delivered:,} delivered")
    for (node, session), delay in sorted(report.attach_delays.items()):
        lines.append(
            f"note {node} session {session}: probes live {delay / 1e6:,.0f} ms after the "
            "node started; what it fired before then was not observable and is in no count"
        )
    if report.undecodable:
        lines.append(
            f"warning: {report.undecodable} record(s) decode with no known schema "
            f"(e.g. {'; '.join(report.undecodable_examples[:2])})"
        )
    closed = sum(1 for s in report.streams if s.closed)
    verdict = "OK" if report.ok else "FAILED"
    lines.append(
        f"audit {verdict}: {len(report.streams)} stream(s) in "
        f"{len({s.key[:2] for s in report.streams})} session(s), {closed} closed, "
        f"{len(report.streams) - closed} open; {report.heartbeats} heartbeat(s) read"
    )
    return "\n".join(lines)


def format_gaps(streams: Iterable[StreamAudit]) -> str:
    """A replay's gap report: per stream read, its seq range and each gap's cover."""
    lines = []
    for audit in streams:
        gaps = audit.gaps
        node, session, stream = audit.key
        seq_range = f"seq {gaps.first_seq}..{gaps.last_seq}" if gaps.first_seq else "no records"
        ledger = (
            "SESSION_END ledger"
            if audit.closed
            else ("periodic ledger" if gaps.ledger else "no ledger read")
        )
        lines.append(
            f"{node} {stream} session {session}: {gaps.delivered:,} record(s), {seq_range}, "
            f"{len(gaps.gaps)} gap(s), {gaps.missing:,} missing, "
            f"{gaps.unexplained:,} unexplained ({ledger})"
        )
        for gap in gaps.gaps[:MAX_GAP_LINES]:
            span = str(gap.first) if gap.size == 1 else f"{gap.first}..{gap.last}"
            lines.append(f"  gap seq {span} ({gap.size:,}): {gap.covered_by}")
        if len(gaps.gaps) > MAX_GAP_LINES:
            lines.append(f"  ... {len(gaps.gaps) - MAX_GAP_LINES} more gap(s)")
        if gaps.duplicates:
            lines.append(f"  {gaps.duplicates} duplicate record(s)")
    return "\n".join(lines)
