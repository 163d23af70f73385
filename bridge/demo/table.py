"""Aligned text tables for the live view and the final summary.

Colour codes take no room on screen but count in ``len()``, so cells are padded as
plain text first and painted afterwards; otherwise coloured columns would drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# SGR codes; plain ANSI so the demo needs no terminal library.
STYLES: dict[str, str] = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "cyan": "36",
}
RESET = "\x1b[0m"
COLUMN_GAP = "  "


@dataclass(frozen=True)
class Cell:
    """One table cell: its text and how to paint it (a key of STYLES, or none)."""

    text: str
    style: str = ""


def paint(text: str, style: str, color: bool) -> str:
    """Wrap ``text`` in the style's SGR code when colour is on."""
    if not color or not style:
        return text
    return f"\x1b[{STYLES[style]}m{text}{RESET}"


def count(value: int | None) -> str:
    """Counts with thousands separators; '-' when unknown (rather than a misleading 0)."""
    return "-" if value is None else f"{value:,}"


def per_second(value: float | None) -> str:
    """Rates: whole numbers, except below 10/s where one decimal still says something."""
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell | str]],
    *,
    color: bool,
    left_columns: int = 1,
) -> list[str]:
    """Lines of a table: the first ``left_columns`` left-aligned, the rest (numbers) right."""
    cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell.text))

    def line(row: Sequence[Cell]) -> str:
        parts = []
        for index, cell in enumerate(row):
            padded = (
                cell.text.ljust(widths[index])
                if index < left_columns
                else cell.text.rjust(widths[index])
            )
            parts.append(paint(padded, cell.style, color))
        return COLUMN_GAP.join(parts).rstrip()

    return [line([Cell(h, "bold") for h in headers]), *(line(row) for row in cells)]
