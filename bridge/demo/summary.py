"""The demo's verdict: per stream, did delivered + lost add up to what fired, exactly?

"Fired" is counted twice, independently: by the bridge (its BPF counter in the final
ledger) and by the node itself (the emulator's report, written after it stopped
firing). A stream balances only if both agree, nothing is left in flight, and the
records Kafka acknowledged plus the losses stated by stage equal that count. A stream
the node fired but the ledger does not mention cannot balance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.demo.table import Cell, count, render_table
from bridge.events.envelope import LOSS_STAGES
from bridge.ledger import StreamLedger


@dataclass(frozen=True)
class StreamBalance:
    """One stream's final numbers from both counters."""

    stream: str
    node_fired: int | None  # the emulator's own count; None if it does not know the stream
    fired: int | None  # the bridge's count; None if the ledger has no such stream
    delivered: int
    in_flight: int
    lost: Mapping[str, int]

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def balanced(self) -> bool:
        return (
            self.node_fired is not None
            and self.fired == self.node_fired
            and self.in_flight == 0
            and self.delivered + self.lost_total == self.node_fired
        )


LEGEND = (
    "FIRED: the node's own count. BPF COUNT: the probes' counter, from the final ledger.",
    "KERNEL..NODE: lost at each stage. OK: DELIVERED + lost == FIRED == BPF COUNT, "
    "nothing in flight.",
)


def balances(books: Sequence[StreamLedger], node_fired: Mapping[str, int]) -> list[StreamBalance]:
    """Join the final ledger with the node's report, stream by stream."""
    out = [
        StreamBalance(
            stream=book.stream,
            node_fired=node_fired.get(book.stream),
            fired=book.fired,
            delivered=book.acked,
            in_flight=book.in_flight,
            lost=dict(book.lost),
        )
        for book in books
    ]
    known = {book.stream for book in books}
    for stream, fired in sorted(node_fired.items()):
        if stream not in known and fired:
            out.append(StreamBalance(stream, fired, None, 0, 0, dict.fromkeys(LOSS_STAGES, 0)))
    return out


def all_balanced(rows: Sequence[StreamBalance]) -> bool:
    return bool(rows) and all(row.balanced for row in rows)


def render_summary(rows: Sequence[StreamBalance], *, color: bool) -> list[str]:
    """The final table, a total row, and one verdict line."""
    headers = ["STREAM", "FIRED", "BPF COUNT", "DELIVERED"]
    headers += [stage.upper() for stage in LOSS_STAGES]
    headers.append("OK")
    table: list[list[Cell | str]] = [_row(row) for row in rows]
    table.append(_total(rows))
    lines = render_table(headers, table, color=color)
    lines += [*LEGEND, ""]
    unbalanced = [row.stream for row in rows if not row.balanced]
    if not rows:
        lines.append("No final ledger: the session did not close its books.")
    elif not unbalanced:
        lines.append(
            f"All {len(rows)} streams balanced: delivered + lost == fired exactly, "
            "and the bridge's count of fired events equals the node's own."
        )
    else:
        lines.append(
            f"{len(unbalanced)} of {len(rows)} streams do NOT balance: {', '.join(unbalanced)}."
        )
    return lines


def _row(row: StreamBalance) -> list[Cell | str]:
    cells: list[Cell | str] = [
        row.stream,
        count(row.node_fired),
        Cell(count(row.fired), "" if row.fired == row.node_fired else "red"),
        count(row.delivered),
    ]
    for stage in LOSS_STAGES:
        lost = row.lost.get(stage, 0)
        cells.append(Cell(count(lost), "red" if lost else ""))
    cells.append(Cell("yes", "green") if row.balanced else Cell("NO", "red"))
    return cells


def _total(rows: Sequence[StreamBalance]) -> list[Cell | str]:
    def total(values: Sequence[int | None]) -> str:
        return count(None if any(v is None for v in values) else sum(v or 0 for v in values))

    cells: list[Cell | str] = [
        Cell("total", "bold"),
        total([r.node_fired for r in rows]),
        total([r.fired for r in rows]),
        count(sum(r.delivered for r in rows)),
    ]
    cells += [count(sum(r.lost.get(stage, 0) for r in rows)) for stage in LOSS_STAGES]
    ok = all_balanced(rows)
    cells.append(Cell("yes", "green") if ok else Cell("NO", "red"))
    return cells
