"""The IPC leg's verdict: do the bridge's books balance, and do they match the node's?

Over IPC the node numbers nothing, so the bridge's "fired" is its own count: events
received plus the drops the node reported. The independent count is the emulated
node's report, which counts per *its* four streams, not the bridge's:

=================== ============================================================
node stream         bridge streams (catalogue's IPC binding)
=================== ============================================================
utxo                utxocache:add, utxocache:spent, utxocache:uncache
net                 net:messages (both directions, one stream)
chain               the six pushed chain:* notifications
node_notifications  the six node:* callbacks
=================== ============================================================

So the summary checks two things: every bridge stream's books balance (fired ==
delivered + lost, nothing in flight), and per node stream the bridge's fired adds up
to what the node sent plus what it dropped. The streams the bridge asks for itself
(polled snapshots such as node:peers and chain:fee_estimates, and mining:tip_changed)
have no count in the node's report: their books must balance, and they are shown as
bridge-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.demo.table import Cell, count, render_table
from bridge.emulator.ipc_report import IpcReport
from bridge.emulator.ipc_scenario import STREAMS
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import LOSS_STAGES
from bridge.ledger import StreamLedger

# The bridge's one stream of both NetMessage directions (bridge.sources.ipc.session's
# NET_STREAM; not imported from there, which would load pycapnp for the summary).
NET_STREAM = "net:messages"
BRIDGE_ONLY = "bridge-only"

LEGEND = (
    "FIRED: the bridge's count (events received + drops the node reported). "
    "KERNEL..NODE: lost at each stage.",
    "OK: DELIVERED + lost == FIRED, nothing in flight. NODE STREAM: the node's stream "
    "whose count the bridge stream adds to.",
)
NODE_LEGEND = (
    "SENT: in the node's callbacks that returned; DROPPED: turned away by its full queue "
    "(net only). OK: BRIDGE FIRED == SENT + DROPPED.",
    "NOT SENT: still queued when the node stopped, never offered to the bridge (shown, "
    "not checked). chain:* and node:* exclude the polled snapshots. A call the node's "
    "shutdown cut off may or may not have reached the bridge: OK allows either.",
)


def node_stream_of(stream: str) -> str | None:
    """The emulated node's stream whose events a bridge stream carries; None for the
    streams the bridge asks for itself (polled snapshots, mining:tip_changed)."""
    if stream == NET_STREAM:
        return "net"
    spec = BY_NAME.get(stream)
    if spec is None or spec.ipc is None or spec.ipc.polled:
        return None
    interface = spec.ipc.interface
    if interface == "UtxoCacheTrace":
        return "utxo"
    if interface == "ChainNotifications":
        return "chain"
    if interface.endswith("Callback"):  # Notify*Callback, BannedListChangedCallback
        return "node_notifications"
    return None  # Mining: the bridge waits for tip changes; the node counts none


@dataclass(frozen=True)
class IpcStreamBooks:
    """One bridge stream's final books."""

    stream: str
    node_stream: str | None
    fired: int
    delivered: int
    in_flight: int
    lost: Mapping[str, int]

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def balanced(self) -> bool:
        return self.in_flight == 0 and self.delivered + self.lost_total == self.fired


@dataclass(frozen=True)
class NodeStreamCheck:
    """One of the node's streams against the bridge streams that carry it."""

    node_stream: str
    sent: int | None  # None: no report from the node
    dropped: int | None
    not_sent: int | None
    bridge_fired: int
    bridge_streams: tuple[str, ...]
    interrupted: int = 0  # calls the node's shutdown cut off: the bridge may have them

    @property
    def node_total(self) -> int | None:
        return None if self.sent is None or self.dropped is None else self.sent + self.dropped

    @property
    def balanced(self) -> bool:
        total = self.node_total
        return total is not None and total <= self.bridge_fired <= total + self.interrupted


@dataclass(frozen=True)
class IpcVerdict:
    streams: tuple[IpcStreamBooks, ...]
    node: tuple[NodeStreamCheck, ...]

    @property
    def balanced(self) -> bool:
        return (
            bool(self.streams)
            and all(s.balanced for s in self.streams)
            and all(n.balanced for n in self.node)
        )


def ipc_verdict(books: Sequence[StreamLedger], report: IpcReport | None) -> IpcVerdict:
    """Join the final ledger with the node's report (see the module docstring)."""
    streams = tuple(
        IpcStreamBooks(
            stream=book.stream,
            node_stream=node_stream_of(book.stream),
            fired=book.fired,
            delivered=book.acked,
            in_flight=book.in_flight,
            lost=dict(book.lost),
        )
        for book in books
    )
    names = list(STREAMS) + sorted(set(report.streams if report else ()) - set(STREAMS))
    checks = []
    for name in names:
        mine = tuple(s for s in streams if s.node_stream == name)
        stats = report.streams.get(name) if report is not None else None
        known = report is not None
        checks.append(
            NodeStreamCheck(
                node_stream=name,
                sent=stats.sent if stats else (0 if known else None),
                dropped=stats.dropped if stats else (0 if known else None),
                not_sent=stats.discarded + stats.failed if stats else (0 if known else None),
                bridge_fired=sum(s.fired for s in mine),
                bridge_streams=tuple(s.stream for s in mine),
                interrupted=stats.interrupted if stats else 0,
            )
        )
    return IpcVerdict(streams, tuple(checks))


def render_ipc_summary(verdict: IpcVerdict, *, color: bool) -> list[str]:
    """The bridge's books per stream, the node's counts per its streams, one verdict."""
    headers = ["STREAM", "NODE STREAM", "FIRED", "DELIVERED"]
    headers += [stage.upper() for stage in LOSS_STAGES]
    headers.append("OK")
    rows = [_stream_row(s) for s in verdict.streams]
    rows.append(_stream_total(verdict.streams))
    lines = render_table(headers, rows, color=color, left_columns=2)
    lines += [*LEGEND, "", "The node's own counts, per its streams:"]
    node_headers = ["NODE STREAM", "BRIDGE STREAMS", "SENT", "DROPPED", "SENT+DROPPED"]
    node_headers += ["BRIDGE FIRED", "NOT SENT", "OK"]
    node_rows = [_node_row(n) for n in verdict.node]
    lines += render_table(node_headers, node_rows, color=color, left_columns=2)
    lines += [*NODE_LEGEND, "", _verdict_line(verdict)]
    return lines


def _verdict_line(verdict: IpcVerdict) -> str:
    if not verdict.streams:
        return "No final ledger: the session did not close its books."
    if verdict.balanced:
        bridge_only = sum(1 for s in verdict.streams if s.node_stream is None)
        return (
            f"All {len(verdict.streams)} streams balanced: delivered + lost == fired exactly, "
            f"and for each of the node's {len(verdict.node)} streams the bridge counted "
            f"exactly what the node sent + dropped ({bridge_only} bridge-only streams)."
        )
    streams = [s.stream for s in verdict.streams if not s.balanced]
    node = [n.node_stream for n in verdict.node if not n.balanced]
    problems = []
    if streams:
        problems.append(
            f"{len(streams)} of {len(verdict.streams)} streams do NOT balance: {', '.join(streams)}"
        )
    if node:
        problems.append(f"the node's count differs for: {', '.join(node)}")
    return "; ".join(problems) + "."


def _ok(balanced: bool) -> Cell:
    return Cell("yes", "green") if balanced else Cell("NO", "red")


def _stream_row(row: IpcStreamBooks) -> list[Cell | str]:
    cells: list[Cell | str] = [
        row.stream,
        Cell(row.node_stream or BRIDGE_ONLY, "" if row.node_stream else "dim"),
        count(row.fired),
        count(row.delivered),
    ]
    for stage in LOSS_STAGES:
        lost = row.lost.get(stage, 0)
        cells.append(Cell(count(lost), "red" if lost else ""))
    cells.append(_ok(row.balanced))
    return cells


def _stream_total(rows: Sequence[IpcStreamBooks]) -> list[Cell | str]:
    cells: list[Cell | str] = [
        Cell("total", "bold"),
        "",
        count(sum(r.fired for r in rows)),
        count(sum(r.delivered for r in rows)),
    ]
    cells += [count(sum(r.lost.get(stage, 0) for r in rows)) for stage in LOSS_STAGES]
    cells.append(_ok(bool(rows) and all(r.balanced for r in rows)))
    return cells


def _node_row(check: NodeStreamCheck) -> list[Cell | str]:
    return [
        check.node_stream,
        _describe(check.bridge_streams),
        count(check.sent),
        Cell(count(check.dropped), "yellow" if check.dropped else ""),
        count(check.node_total),
        Cell(count(check.bridge_fired), "" if check.balanced else "red"),
        count(check.not_sent),
        _ok(check.balanced),
    ]


def _describe(streams: Sequence[str]) -> str:
    """'net:messages', or 'utxocache:* (3)' for several streams of one prefix."""
    if not streams:
        return "(none)"
    if len(streams) == 1:
        return streams[0]
    prefixes = sorted({s.partition(":")[0] for s in streams})
    return f"{'/'.join(prefixes)}:* ({len(streams)})"
