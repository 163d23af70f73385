"""The ping-flood benchmark harness, the same for every source.

RFC #35142's workload: the node sees inbound "ping" and sends outbound "pong" messages
(8-byte payloads), each a net event. For each offered rate, one node run (so one
session, and an exact SESSION_END ledger for exactly that rate) is traced by a
``tracebridge run`` process writing to Kafka with acks=all. The bridge's CPU is read
from /proc between "attached" and "session ended" and split by phase with what the
bridge itself measures (bridge/app.py SessionCpu): receiving (drain, plus IPC's event
loop thread), producing, and librdkafka's threads (the rest).

Sources plug in a :class:`NodeRunner`: how to run one traced node, and (optionally)
the node's cost with nothing attached.

With ``metrics``, the bridge serves its Prometheus endpoint and the benchmark scrapes it
every :data:`SCRAPE_INTERVAL_S` while the bridge runs (far more often than Prometheus
would), so the bridge's CPU per event includes what metrics cost: the per-record latency
observation, the per-heartbeat counters and the scrapes. After each session, /metrics
must say what the ledger says.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from bridge.status import BridgeExited, StatusFile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NET_STREAMS = ("net:inbound_message", "net:outbound_message", "net:messages")
SCRAPE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class NodeRun:
    """What one traced node run reports about itself."""

    events_fired: int
    elapsed_s: float
    node_us_per_event: float | None  # the node's CPU per event with the bridge attached


@dataclass(frozen=True)
class StageResult:
    """One offered rate through one source."""

    source: str
    offered_eps: float  # events/s asked of the node (0 = flat out)
    fired: int
    achieved_eps: float
    delivered: int
    delivered_eps: float
    lost: dict[str, int]
    bridge_cpu_s: float  # the whole bridge process
    receive_cpu_s: float  # drain + source thread: getting events and encoding them
    produce_cpu_s: float  # the produce() calls
    settle_s: float
    node_us_per_event: float | None
    node_us_per_event_untraced: float | None
    metrics: bool = False  # the bridge served /metrics, scraped every SCRAPE_INTERVAL_S
    metrics_delivered: int | None = None  # what /metrics counted delivered in this run
    headers: bool = True  # kafka.event_headers (the default: on)

    @property
    def label(self) -> str:
        """The source, and the configuration where it is not the default one."""
        return (
            self.source
            + ("" if self.headers else " -headers")
            + (" +metrics" if self.metrics else "")
        )

    def metrics_agree(self) -> bool:
        """With metrics on, /metrics counted exactly what the ledger delivered."""
        return not self.metrics or self.metrics_delivered == self.delivered

    @property
    def loss_pct(self) -> float:
        return 100.0 * sum(self.lost.values()) / self.fired if self.fired else 0.0

    def per_event_us(self, seconds: float) -> float:
        return 1e6 * seconds / self.delivered if self.delivered else float("nan")

    @property
    def librdkafka_cpu_s(self) -> float:
        """Bridge CPU outside its own threads' measured phases: librdkafka's threads (and
        the bridge thread's bookkeeping), which is the same for every source."""
        return max(0.0, self.bridge_cpu_s - self.receive_cpu_s - self.produce_cpu_s)

    def balanced(self) -> bool:
        return self.delivered + sum(self.lost.values()) == self.fired


class NodeRunner(Protocol):
    """One source's side of the benchmark."""

    source: str

    def bridge_args(self) -> list[str]:
        """``tracebridge run`` arguments that point the bridge at this source's node."""

    def bridge_env(self) -> dict[str, str]:
        """TRACEBRIDGE_* settings for the bridge (what has no flag)."""

    def traced(self, rate_eps: float, seconds: float, attached: Any) -> NodeRun:
        """Start a node (held until the bridge is attached: call ``attached()`` once it
        runs), let it fire at ``rate_eps`` for ``seconds``, and return its report."""

    def untraced_us_per_event(self, rate_eps: float, seconds: float) -> float | None:
        """The node's CPU per event with nothing attached, if measurable."""


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads: librdkafka's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class BridgeProcess:
    """``tracebridge run`` as its own process, re-attaching to each new node run."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], bootstrap: str, prefix: str, workdir: Path,
        node_id: str = "bench-node",
    ) -> None:  # fmt: skip
        self.status = StatusFile(workdir / "status.json")
        self.log_path = workdir / "bridge.log"
        self._log = self.log_path.open("w")
        assert self.status.path is not None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "--log-level",
                "warning",
                "run",
                *args,
                "-b",
                bootstrap,
                "--topic-prefix",
                prefix,
                "--node-id",
                node_id,
                "--status-file",
                str(self.status.path),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )

    def wait_for(self, state: str, not_session: str | None, timeout: float) -> dict[str, Any]:
        try:
            status = self.status.wait_for(
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


def free_port() -> int:
    """A TCP port nothing listens on now, for the bridge's metrics endpoint."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MetricsScraper:
    """Scrapes a bridge's /metrics every ``interval_s`` in a thread, as Prometheus does."""

    def __init__(self, port: int, interval_s: float = SCRAPE_INTERVAL_S) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval_s = interval_s
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310
            text: str = response.read().decode()
        self.scrapes += 1
        return text

    def delivered(self, streams: Sequence[str] = NET_STREAMS) -> int:
        """``tracebridge_events_delivered_total`` summed over ``streams``, now."""
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(self.scrape())
                for sample in family.samples
                if sample.name == "tracebridge_events_delivered_total"
                and sample.labels.get("stream") in streams
            )
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scrape()
            except OSError:  # the check after each run would fail too: it says so
                self.failures += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)


def run_rates(
    runner: NodeRunner, bootstrap: str, rates_eps: Sequence[float], seconds: float, prefix: str,
    baseline: bool = True, settings_env: Mapping[str, str] | None = None, metrics: bool = False,
    headers: bool = True,
) -> list[StageResult]:  # fmt: skip
    """Every rate through ``runner``'s source; one row per rate. ``settings_env``: more
    TRACEBRIDGE_* settings for the bridge (what the benchmark varies). ``metrics``: the
    bridge serves /metrics, scraped meanwhile and checked against the ledger.
    ``headers``: kafka.event_headers."""
    # Untraced runs first: a bridge that finds nodes by binary would attach to them.
    untraced = [
        runner.untraced_us_per_event(rate, seconds) if baseline else None for rate in rates_eps
    ]
    env = {**runner.bridge_env(), **(settings_env or {})}
    if not headers:
        env["TRACEBRIDGE_KAFKA__EVENT_HEADERS"] = "false"
    scraper: MetricsScraper | None = None
    if metrics:
        port = free_port()
        env |= {"TRACEBRIDGE_METRICS__PORT": str(port), "TRACEBRIDGE_METRICS__ADDRESS": "127.0.0.1"}
        scraper = MetricsScraper(port)
    results = []
    with tempfile.TemporaryDirectory(prefix="tracebridge-bench-") as workdir:
        bridge = BridgeProcess(runner.bridge_args(), env, bootstrap, prefix, Path(workdir))
        try:
            bridge.wait_for("waiting", None, timeout=60)  # the endpoint listens from here
            if scraper is not None:
                scraper.start()
            last: str | None = None
            counted = 0  # delivered, as /metrics said after the previous run
            for rate, cost in zip(rates_eps, untraced, strict=True):
                result, last = _one_rate(bridge, runner, rate, seconds, last, cost)
                if scraper is not None:
                    total = scraper.delivered()  # the run's books are closed: final
                    result = replace(result, metrics=True, metrics_delivered=total - counted)
                    counted = total
                results.append(result if headers else replace(result, headers=False))
        finally:
            if scraper is not None:
                scraper.stop()
            bridge.close()
    return results


def sum_books(
    status: Mapping[str, Any], streams: Sequence[str] | None = None
) -> tuple[int, int, dict[str, int]]:
    """Fired, delivered (acked) and lost by stage, summed over ``streams`` (default:
    all), from the books a ``session_ended`` status carries (its SESSION_END ledger)."""
    books = [b for b in status["books"] if streams is None or b["stream"] in streams]
    lost: dict[str, int] = {}
    for book in books:
        for where, count in book["lost"].items():
            lost[where] = lost.get(where, 0) + count
    return sum(b["fired"] for b in books), sum(b["acked"] for b in books), lost


def _one_rate(
    bridge: BridgeProcess, runner: NodeRunner, rate: float, seconds: float,
    last: str | None, untraced: float | None,
) -> tuple[StageResult, str]:  # fmt: skip
    marks: dict[str, Any] = {}

    def attached() -> None:
        marks["status"] = bridge.wait_for("attached", last, timeout=120)
        marks["cpu"] = process_cpu_s(bridge.process.pid)

    run = runner.traced(rate, seconds, attached)
    exited = time.monotonic()
    ended = bridge.wait_for("session_ended", last, timeout=300)
    settle = time.monotonic() - exited
    cpu = process_cpu_s(bridge.process.pid) - marks["cpu"]
    fired, delivered, lost = sum_books(ended, NET_STREAMS)
    phases = ended.get("cpu", {})
    result = StageResult(
        source=runner.source,
        offered_eps=rate,
        fired=fired,
        # The ledger's count for both columns (the node's own report can differ by a
        # last batch sent after its stage timer stopped).
        achieved_eps=fired / run.elapsed_s if run.elapsed_s else 0.0,
        delivered=delivered,
        delivered_eps=delivered / run.elapsed_s if run.elapsed_s else 0.0,
        lost=lost,
        bridge_cpu_s=cpu,
        receive_cpu_s=phases.get("drain_s", 0.0) + phases.get("source_thread_s", 0.0),
        produce_cpu_s=phases.get("produce_s", 0.0),
        settle_s=settle,
        node_us_per_event=run.node_us_per_event,
        node_us_per_event_untraced=untraced,
    )
    return result, str(marks["status"]["session_id"])


def table_head(columns: Sequence[str]) -> list[str]:
    """A Markdown table's header and rule: every benchmark prints README-ready tables."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def format_table(results: Sequence[StageResult]) -> str:
    """The table the README quotes: throughput, loss, and CPU per delivered event."""
    columns = (
        "source",
        "offered ev/s",
        "fired ev/s",
        "delivered ev/s",
        "loss %",
        "lost kernel/bridge/producer/node",
        "bridge CPU us/ev",
        "receive",
        "produce",
        "librdkafka",
        "node us/ev traced",
        "untraced",
    )
    lines = table_head(columns)

    def us(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    for r in results:
        offered = "flat out" if r.offered_eps == 0 else f"{r.offered_eps:,.0f}"
        lost = "/".join(str(r.lost.get(k, 0)) for k in ("kernel", "bridge", "producer", "node"))
        lines.append(
            f"| {r.label} | {offered} | {r.achieved_eps:,.0f} | {r.delivered_eps:,.0f} | "
            f"{r.loss_pct:.2f} | {lost} | {r.per_event_us(r.bridge_cpu_s):.2f} | "
            f"{r.per_event_us(r.receive_cpu_s):.2f} | {r.per_event_us(r.produce_cpu_s):.2f} | "
            f"{r.per_event_us(r.librdkafka_cpu_s):.2f} | {us(r.node_us_per_event)} | "
            f"{us(r.node_us_per_event_untraced)} |"
        )
    return "\n".join(lines)
