"""The USDT ping-flood benchmark (the RFC #35142 workload, on the emulated node).

For each offered rate the emulated node fires ``net:inbound_message`` ("ping") and
``net:outbound_message`` ("pong") pairs with 8-byte payloads for a fixed time:

* once with nothing attached (semaphores off), for the node's baseline cost per hit;
* once traced by a ``tracebridge run`` process writing to Kafka (acks=all).

Each traced run is its own node process and therefore its own session, so its
SESSION_END ledger gives exact delivered/lost counts for exactly that rate. The
bridge's CPU is read from /proc between "attached" and "session ended", so it covers
draining, encoding, producing and settling every record of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.emulator import PingStage, StageReport, UsdtNode, UsdtScenario, build_usdt_node
from bridge.status import BridgeExited, StatusFile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STREAMS = ("net:inbound_message", "net:outbound_message")


@dataclass(frozen=True)
class StageResult:
    """One offered rate, traced and untraced."""

    offered_eps: float  # events/s the node was asked to fire (0 = flat out)
    fired: int
    achieved_eps: float  # events/s the node actually fired while traced
    delivered: int
    delivered_eps: float  # acknowledged by Kafka per second of firing
    lost: dict[str, int]
    bridge_cpu_s: float
    settle_s: float  # from the node's exit to the bridge's final ledger
    node_ns_per_hit_traced: float | None
    node_ns_per_hit_untraced: float | None

    @property
    def loss_pct(self) -> float:
        return 100.0 * sum(self.lost.values()) / self.fired if self.fired else 0.0

    @property
    def bridge_us_per_event(self) -> float:
        return 1e6 * self.bridge_cpu_s / self.delivered if self.delivered else float("nan")

    @property
    def added_ns_per_hit(self) -> float | None:
        if self.node_ns_per_hit_traced is None or self.node_ns_per_hit_untraced is None:
            return None
        return self.node_ns_per_hit_traced - self.node_ns_per_hit_untraced

    def balanced(self) -> bool:
        return self.delivered + sum(self.lost.values()) == self.fired


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads: librdkafka's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _stage(report_stages: list[StageReport]) -> StageReport:
    (stage,) = report_stages
    return stage


def _ns_per_hit(stage: StageReport) -> float | None:
    return stage.thread_cpu_ns / stage.hits if stage.hits else None


def untraced_cost(binary: Path, rate_eps: float, seconds: float) -> float | None:
    """The node's CPU per probe call site with no tracer (semaphores off)."""
    with UsdtNode(binary) as node:
        node.start(UsdtScenario(mode="ping", stages=(PingStage(rate_eps / 2, seconds),)))
        return _ns_per_hit(_stage(node.wait(timeout=seconds * 4 + 60).stages))


class BridgeProcess:
    """``tracebridge run`` as its own process, re-attaching to each new node run."""

    def __init__(self, binary: Path, bootstrap: str, prefix: str, workdir: Path) -> None:
        self.status_path = workdir / "status.json"
        self.log_path = workdir / "bridge.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "--log-level",
                "warning",
                "run",
                "--binary",
                str(binary),
                "-b",
                bootstrap,
                "--topic-prefix",
                prefix,
                "-t",
                "net:*_message",
                "--node-id",
                "bench-node",
                "--status-file",
                str(self.status_path),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_for(self, state: str, not_session: str | None, timeout: float) -> dict[str, Any]:
        try:
            status = StatusFile(self.status_path).wait_for(
                state,
                timeout=timeout,
                not_session=not_session,
                still_running=lambda: self.process.poll() is None,
            )
        except (BridgeExited, TimeoutError) as error:
            raise RuntimeError(f"{error}; the bridge's log ends:\n{self._log_tail()}") from None
        assert status is not None  # not interruptible
        return status

    def _log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def close(self) -> None:
        self.process.send_signal(2)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def traced_run(
    bridge: BridgeProcess, binary: Path, rate_eps: float, seconds: float, last: str | None
) -> tuple[StageResult, str]:
    with UsdtNode(binary) as node:
        node.start(
            UsdtScenario(mode="ping", stages=(PingStage(rate_eps / 2, seconds),), wait_start=True)
        )
        attached = bridge.wait_for("attached", last, timeout=120)
        if attached.get("node_pid") != node.pid:
            raise RuntimeError(
                f"the bridge attached to pid {attached.get('node_pid')}, not {node.pid}"
            )
        cpu_before = process_cpu_s(bridge.process.pid)
        node.go()
        report = node.wait(timeout=seconds * 4 + 60)
        exited = time.monotonic()
    ended = bridge.wait_for("session_ended", last, timeout=300)
    settle = time.monotonic() - exited
    cpu = process_cpu_s(bridge.process.pid) - cpu_before
    books = [b for b in ended["books"] if b["stream"] in STREAMS]
    stage = _stage(report.stages)
    fired = sum(b["fired"] for b in books)
    delivered = sum(b["acked"] for b in books)
    lost: dict[str, int] = {}
    for book in books:
        for where, count in book["lost"].items():
            lost[where] = lost.get(where, 0) + count
    result = StageResult(
        offered_eps=rate_eps,
        fired=fired,
        achieved_eps=stage.events_fired / stage.elapsed_s,
        delivered=delivered,
        delivered_eps=delivered / stage.elapsed_s,
        lost=lost,
        bridge_cpu_s=cpu,
        settle_s=settle,
        node_ns_per_hit_traced=_ns_per_hit(stage),
        node_ns_per_hit_untraced=None,
    )
    return result, str(attached["session_id"])


def run_usdt_bench(
    bootstrap: str, rates_eps: list[float], seconds: float, prefix: str, baseline: bool = True
) -> list[StageResult]:
    """Run every rate traced (and untraced for the baseline); return one row per rate."""
    binary = build_usdt_node()
    # Untraced runs first: the bridge attaches to every process running the binary, so
    # it must not be running while the baseline is measured.
    untraced = [untraced_cost(binary, rate, seconds) if baseline else None for rate in rates_eps]
    results: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="tracebridge-bench-") as workdir:
        bridge = BridgeProcess(binary, bootstrap, prefix, Path(workdir))
        try:
            bridge.wait_for("waiting", None, timeout=60)
            last: str | None = None
            for rate, cost in zip(rates_eps, untraced, strict=True):
                traced, last = traced_run(bridge, binary, rate, seconds, last)
                results.append(StageResult(**{**traced.__dict__, "node_ns_per_hit_untraced": cost}))
        finally:
            bridge.close()
    return results


def format_table(results: list[StageResult]) -> str:
    """The table the README quotes."""
    columns = (
        "offered ev/s",
        "fired ev/s",
        "delivered ev/s",
        "loss %",
        "lost kernel/bridge/producer",
        "bridge CPU us/ev",
        "node ns/hit traced",
        "untraced",
        "added ns/hit",
        "settle s",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    def ns(value: float | None) -> str:
        return f"{value:,.0f}" if value is not None else "-"

    for r in results:
        offered = "flat out" if r.offered_eps == 0 else f"{r.offered_eps:,.0f}"
        lost = f"{r.lost.get('kernel', 0)}/{r.lost.get('bridge', 0)}/{r.lost.get('producer', 0)}"
        lines.append(
            f"| {offered} | {r.achieved_eps:,.0f} | {r.delivered_eps:,.0f} | {r.loss_pct:.2f} | "
            f"{lost} | {r.bridge_us_per_event:.2f} | {ns(r.node_ns_per_hit_traced)} | "
            f"{ns(r.node_ns_per_hit_untraced)} | {ns(r.added_ns_per_hit)} | {r.settle_s:.2f} |"
        )
    return "\n".join(lines)
