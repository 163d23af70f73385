"""RFC #35142's ping benchmark on a real ``bitcoind`` (regtest, loopback).

A :class:`~bridge.realnode.p2p.PingPeer` floods the node with pings at each offered
rate; every pong proves one ``net:inbound_message`` ("ping") and one
``net:outbound_message`` ("pong") event. Each (condition, rate) is one node run, so a
tracer's books for it are one session's and exact:

* ``none``: nothing attached; the tracepoints' semaphores are off.
* ``bridge``: ``tracebridge run --pidfile <node's> -t 'net:*_message'`` into Kafka. One
  bridge process follows the node through its restarts (one session per rate); its
  SESSION_END books say what fired, what Kafka acknowledged and what was lost where.
* ``perfbuf``: the contrib/tracing-style consumer (:mod:`.perfbuf_baseline`): BCC perf
  buffers, a wakeup and a Python callback per event.

What is measured, per run:

* from the peer: pings/s answered, round trips (p50/p99; the flood keeps at most
  ``window`` pings unanswered, so flat out the round trip is about window / rate);
* the node's CPU (utime + stime of every thread, /proc) per pong over the flood;
* the consumer's CPU (the whole bridge process, librdkafka's threads included; or the
  baseline process) from the flood's start to the end of its books, per event it got;
* events: expected = every message the peer sent and received (2 x pongs, plus the
  handshake's and the node's own few), fired (counted at the probe), delivered, and
  lost by stage.

The Kafka broker shares the two cores and is not counted in any figure.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.bench.perfbuf_baseline import PerfbufConsumer
from bridge.bench.ping import BridgeProcess, process_cpu_s, sum_books, table_head
from bridge.realnode.binaries import CoreBinaries
from bridge.realnode.node import RegtestNode
from bridge.realnode.p2p import DEFAULT_WINDOW, FloodResult, PingPeer

CONDITIONS = ("none", "bridge", "perfbuf")
MESSAGE_STREAMS = ("net:inbound_message", "net:outbound_message")
# After the flood, how long the peer keeps reading: the node's last few messages (a
# feefilter, a ping of its own) then land in the peer's counts before it hangs up.
SETTLE_S = 0.3


@dataclass(frozen=True)
class PingRow:
    """One offered rate under one condition."""

    condition: str
    offered_pps: float  # 0 = flat out
    pings: int
    pongs: int
    pings_per_s: float
    rtt_p50_ms: float | None
    rtt_p99_ms: float | None
    node_us_per_ping: float | None
    consumer_us_per_event: float | None
    expected: int  # messages the peer exchanged: the events the node must fire
    fired: int | None  # counted at the probe (the bridge's ledger, the baseline's counter)
    delivered: int | None  # acked by Kafka (bridge), handed to the callback (baseline)
    lost: dict[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        """The tracer's books close (delivered + lost == fired) and saw every event."""
        if self.fired is None or self.delivered is None:
            return True
        return self.delivered + sum(self.lost.values()) == self.fired == self.expected


def _flood(
    node: RegtestNode, rate_pps: float, seconds: float, window: int
) -> tuple[FloodResult, float, int]:
    """Connect, flood, settle, hang up. Returns the flood, the node's CPU seconds over
    it, and the messages exchanged (the events the node fired for this connection)."""
    with PingPeer(node.p2p_port, window=window) as peer:
        peer.connect()
        node_cpu = process_cpu_s(node.pid)
        result = peer.flood(rate_pps, seconds)
        node_cpu = process_cpu_s(node.pid) - node_cpu
        peer.settle(SETTLE_S)
    return result, node_cpu, peer.messages_exchanged


def _row(
    condition: str, result: FloodResult, node_cpu_s: float, expected: int,
    consumer_cpu_s: float | None = None, fired: int | None = None,
    delivered: int | None = None, lost: dict[str, int] | None = None,
) -> PingRow:  # fmt: skip
    return PingRow(
        condition=condition,
        offered_pps=result.offered_pps,
        pings=result.pings,
        pongs=result.pongs,
        pings_per_s=result.pings_per_s,
        rtt_p50_ms=result.rtt_percentile_ms(50),
        rtt_p99_ms=result.rtt_percentile_ms(99),
        node_us_per_ping=1e6 * node_cpu_s / result.pongs if result.pongs else None,
        consumer_us_per_event=(
            1e6 * consumer_cpu_s / delivered if consumer_cpu_s is not None and delivered else None
        ),
        expected=expected,
        fired=fired,
        delivered=delivered,
        lost=lost or {},
    )


def _untraced(node: RegtestNode, rate: float, seconds: float, window: int) -> PingRow:
    node.start()
    try:
        result, node_cpu, expected = _flood(node, rate, seconds, window)
    finally:
        node.stop()
    return _row("none", result, node_cpu, expected)


def _perfbuf(node: RegtestNode, rate: float, seconds: float, window: int) -> PingRow:
    node.start()
    try:
        consumer = PerfbufConsumer(node.pid)
        start_cpu = consumer.cpu_s()
        result, node_cpu, expected = _flood(node, rate, seconds, window)
    finally:
        node.stop()
    counts = consumer.finish()
    return _row(
        "perfbuf", result, node_cpu, expected,
        consumer_cpu_s=counts.cpu_total_s - start_cpu, fired=counts.hits,
        delivered=counts.received,
        lost={"perf buffer": counts.lost, "unreported": counts.unreported},
    )  # fmt: skip


def _bridged(
    node: RegtestNode, bridge: BridgeProcess, last: str | None, rate: float, seconds: float,
    window: int,
) -> tuple[PingRow, str]:  # fmt: skip
    node.start()
    try:
        attached = bridge.wait_for("attached", last, timeout=120)
        if attached.get("node_pid") != node.pid:
            raise RuntimeError(f"the bridge attached to pid {attached.get('node_pid')}")
        start_cpu = process_cpu_s(bridge.process.pid)
        result, node_cpu, expected = _flood(node, rate, seconds, window)
    finally:
        node.stop()
    ended = bridge.wait_for("session_ended", last, timeout=300)
    bridge_cpu = process_cpu_s(bridge.process.pid) - start_cpu
    fired, delivered, lost = sum_books(ended, MESSAGE_STREAMS)
    row = _row(
        "bridge", result, node_cpu, expected,
        consumer_cpu_s=bridge_cpu, fired=fired, delivered=delivered, lost=lost,
    )  # fmt: skip
    return row, str(attached["session_id"])


def run_realping(
    binaries: CoreBinaries, rates_pps: Sequence[float], seconds: float,
    conditions: Sequence[str], bootstrap: str | None, window: int = DEFAULT_WINDOW,
) -> list[PingRow]:  # fmt: skip
    """Every rate under every condition, in the order given; one row per run."""
    rows: list[PingRow] = []
    workdir = Path(tempfile.mkdtemp(prefix="tracebridge-realping-"))
    try:
        # One datadir for every run (an empty regtest chain starts in about a second);
        # its pidfile is how the bridge finds each new node process.
        node = RegtestNode(binaries.bitcoind, workdir / "node", extra_args=["-disablewallet"])
        for condition in conditions:
            if condition == "none":
                rows += [_untraced(node, rate, seconds, window) for rate in rates_pps]
            elif condition == "perfbuf":
                rows += [_perfbuf(node, rate, seconds, window) for rate in rates_pps]
            elif condition == "bridge":
                if bootstrap is None:
                    raise ValueError("the bridge condition needs a Kafka bootstrap")
                rows += _bridge_condition(node, bootstrap, rates_pps, seconds, window, workdir)
            else:
                raise ValueError(f"unknown condition {condition!r} (known: {CONDITIONS})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _bridge_condition(
    node: RegtestNode, bootstrap: str, rates_pps: Sequence[float], seconds: float,
    window: int, workdir: Path,
) -> list[PingRow]:  # fmt: skip
    bridge_dir = workdir / "bridge"
    bridge_dir.mkdir()
    bridge = BridgeProcess(
        ["--pidfile", str(node.pidfile), "-t", "net:*_message"],
        {},
        bootstrap,
        f"bench-realping-{int(time.time())}",
        bridge_dir,
    )
    rows = []
    try:
        bridge.wait_for("waiting", None, timeout=60)
        last: str | None = None
        for rate in rates_pps:
            row, last = _bridged(node, bridge, last, rate, seconds, window)
            rows.append(row)
    finally:
        bridge.close()
    return rows


def format_ping_table(rows: Sequence[PingRow]) -> str:
    """The table for the README: one line per condition and rate."""
    columns = (
        "condition",
        "offered pings/s",
        "pings/s",
        "RTT p50 ms",
        "p99 ms",
        "node us/ping",
        "consumer us/ev",
        "events expected",
        "fired",
        "delivered",
        "lost by stage",
    )
    lines = table_head(columns)

    def num(value: float | int | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for r in rows:
        offered = "flat out" if r.offered_pps == 0 else f"{r.offered_pps:,.0f}"
        lost = ", ".join(f"{stage} {n:,}" for stage, n in r.lost.items() if n) or (
            "0" if r.fired is not None else "-"
        )
        lines.append(
            f"| {r.condition} | {offered} | {r.pings_per_s:,.0f} | {num(r.rtt_p50_ms, '.3f')} | "
            f"{num(r.rtt_p99_ms, '.3f')} | {num(r.node_us_per_ping, '.2f')} | "
            f"{num(r.consumer_us_per_event, '.2f')} | {r.expected:,} | {num(r.fired, ',')} | "
            f"{num(r.delivered, ',')} | {lost} |"
        )
    return "\n".join(lines)
