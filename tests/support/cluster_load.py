"""A ping flood through the real bridge into a local cluster, watched while faults strike.

The fault tests (tests/kafka/test_cluster_faults.py) need three things besides the
cluster: load that keeps flowing while a broker fails (the emulated node's ping flood,
traced with real BPF), a clock on the bridge's acknowledgements (to see writes stall and
resume, and to wait for that instead of sleeping), and a verdict from the topics alone
(``tracebridge audit``) once the books are closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from bridge.config import load_settings
from bridge.emulator import EmulatorReport, PingStage, UsdtNode, UsdtScenario
from bridge.replay.audit import AuditReport, StreamAudit, read_audit
from bridge.sinks.kafka.topics import event_topic
from tests.support.pipeline import RunningBridge, running_bridge

# The node's rate: two events (ping in, pong out) per ping, so 100k events/s, the load
# the faults must be survived under. It fires until stopped.
PINGS_PER_S = 50_000
EVENTS_PER_S = 2 * PINGS_PER_S


def ping_flood(pings_per_s: float = PINGS_PER_S) -> UsdtScenario:
    return UsdtScenario(
        tracepoints=("net:*_message",),
        mode="ping",
        stages=(PingStage(rate=pings_per_s, seconds=3600),),
        wait_start=True,
    )


STREAMS = ("net:inbound_message", "net:outbound_message")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; return how long that took, or fail naming it."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass
class AckWatch:
    """Samples the bridge's acknowledged count and producer queue every 50 ms.

    Read from the sink's own counters (the ones its delivery reports increment), so
    "acks resumed" means Kafka acknowledged records, not that the bridge queued them.
    """

    running: RunningBridge
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, acked, queued)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def acked(self) -> int:
        return sum(self.running.bridge.sink.acked)

    def queued(self) -> int:
        return self.running.bridge.sink.in_flight()

    def start(self) -> None:
        def sample() -> None:
            while not self._stop.wait(0.05):
                self.samples.append((time.monotonic(), self.acked(), self.queued()))

        self._thread = threading.Thread(target=sample, name="ack-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def wait_acks(self, count: int, timeout: float, what: str) -> float:
        """Wait until ``count`` more records are acknowledged than now."""
        target = self.acked() + count
        return wait_until(lambda: self.acked() >= target, timeout, what)

    def longest_stall(self, since: float, until: float | None = None) -> float:
        """The longest time in [since, until] during which no acknowledgement came."""
        window = [s for s in self.samples if s[0] >= since and (until is None or s[0] <= until)]
        longest, last_change, last_acked = 0.0, since, None
        for t, acked, _ in window:
            if last_acked is not None and acked != last_acked:
                last_change = t
            last_acked = acked
            longest = max(longest, t - last_change)
        return longest

    def peak_queue(self, since: float) -> int:
        return max((q for t, _, q in self.samples if t >= since), default=0)


class ClusterView:
    """Partition leadership and in-sync replicas, as the cluster's metadata states them."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AdminClient(
            {
                "bootstrap.servers": bootstrap,
                # A frozen node keeps its connection open and answers nothing; without
                # this the client would keep asking it for 60 s (socket.timeout.ms).
                "socket.timeout.ms": 2000,
            },
            # Its refused connections to a dead node go to logging, not raw to stderr.
            logger=logging.getLogger("librdkafka.view"),
        )

    def partition(self, topic: str) -> Any:
        return self.admin.list_topics(topic, timeout=5).topics[topic].partitions[0]

    def leader(self, topic: str) -> int:
        try:
            return int(self.partition(topic).leader)
        except Exception:  # a metadata request failing mid-fault: no leader known
            return -1

    def fenced(self, topic: str, node: int) -> bool:
        """Whether ``topic`` is led by another node than ``node``, which is out of sync."""
        try:
            partition = self.partition(topic)
        except Exception:  # as above
            return False
        return int(partition.leader) not in (node, -1) and node not in partition.isrs

    def in_sync(self, topic: str) -> set[int]:
        try:
            return set(self.partition(topic).isrs)
        except Exception:  # as above
            return set()


@dataclass
class Flood:
    """One run: the node flooding, the bridge tracing it into ``prefix``, the watch on."""

    node: UsdtNode
    bridge: RunningBridge
    watch: AckWatch
    prefix: str
    view: ClusterView

    @property
    def topic(self) -> str:
        """The loaded topic: both ping streams go to ``<prefix>.net``."""
        return event_topic(self.prefix, "net")


@dataclass
class FloodResult:
    report: EmulatorReport
    books: list[dict[str, Any]]


@contextmanager
def flood(
    bootstrap: str,
    prefix: str,
    tmp_path: Path,
    result: list[FloodResult],
    kafka: dict[str, Any] | None = None,
    usdt: dict[str, Any] | None = None,
    pings_per_s: float = PINGS_PER_S,
) -> Iterator[Flood]:
    """Flood, trace and watch until the block ends; then stop the node, let the bridge
    close its books (SESSION_END) and append what fired and the final books to ``result``."""
    with UsdtNode() as node:
        node.start(ping_flood(pings_per_s))
        settings = load_settings(
            None,
            {
                "node_id": "cluster-node",
                # by pid: a stray emulator left by another run must not be traced
                "usdt": {
                    "pid": node.pid,
                    "reattach": False,
                    "tracepoints": ["net:*_message"],
                    **(usdt or {}),
                },
                "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, **(kafka or {})},
                "heartbeat_interval_s": 1.0,
            },
        )
        with running_bridge(settings, tmp_path) as bridge:
            bridge.wait_for("attached")
            watch = AckWatch(bridge)
            watch.start()
            try:
                node.go()
                watch.wait_acks(EVENTS_PER_S, timeout=60, what="a second of load acknowledged")
                yield Flood(node, bridge, watch, prefix, ClusterView(bootstrap))
                report = node.stop()
                ended = bridge.wait_for("stopped", timeout=300)
            finally:
                watch.stop()
    result.append(FloodResult(report, ended["books"]))


def audit_exact(
    bootstrap: str, prefix: str, fired: FloodResult, losses_at: frozenset[str] = frozenset()
) -> dict[str, StreamAudit]:
    """Require what the issue asks after every fault, from the topics alone: the strict
    audit passes; for every stream delivered + lost == fired (the node's own count), no
    seq twice, no warning (no record both lost and written), and losses only at the
    stages in ``losses_at``, each counted in the ledger."""
    report: AuditReport = read_audit(bootstrap, prefix).judge(require_closed=True)
    assert report.ok, [s.problems for s in report.streams if s.problems]
    streams = {s.key[2]: s for s in report.streams}
    assert set(streams) == set(STREAMS), sorted(streams)
    for name, stream in streams.items():
        gaps, ledger = stream.gaps, stream.gaps.ledger
        assert ledger is not None
        assert ledger.final
        assert ledger.fired == fired.report.fired[name], name
        assert gaps.duplicates == 0, (name, gaps.duplicate_seqs)
        assert not stream.warnings, (name, stream.warnings)
        assert gaps.delivered + ledger.lost_total == ledger.fired, (name, stream.as_dict())
        unexpected = {k: v for k, v in ledger.lost.items() if v and k not in losses_at}
        assert not unexpected, (name, unexpected)
    return streams
