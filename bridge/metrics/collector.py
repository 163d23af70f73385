"""The metric families a scrape returns, read from :class:`BridgeMetrics`.

Names follow Prometheus' conventions: a ``tracebridge_`` prefix, ``_total`` on
counters, base units in the name (``_seconds``, ``_bytes``). Every series carries
``node``, so one Prometheus can watch a fleet; stream series carry ``source`` and
``stream``; losses carry ``stage`` (kernel, bridge, producer, node).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.events.envelope import LOSS_STAGES
from bridge.metrics.books import COUNTED_FIELDS, StreamKey
from bridge.metrics.state import ATTACH_BOUNDS_S, BridgeMetrics

PREFIX = "tracebridge_"
STREAM_LABELS = ("node", "source", "stream")

COUNTER_HELP: dict[str, str] = {
    "events_fired": "Events the node fired (BPF counters; over IPC, the last seq), from the "
    "ledger's heartbeats.",
    "events_captured": "Events the bridge read from the rings or the IPC callbacks.",
    "events_produced": "Records handed to the Kafka producer.",
    "events_delivered": "Records Kafka acknowledged (acks=all).",
    "dead_letters": "Records that could not be encoded, written to <prefix>.deadletter.",
    "events_in_doubt": "Records that timed out after they were sent to Kafka, which may "
    "have written them: neither delivered nor lost until a reader of the topic settles "
    "them (tracebridge audit).",
}


def _histogram_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (last one +Inf) as Prometheus' cumulative ``le`` buckets."""
    out, running = [], 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        running += count
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
    return out


class BridgeCollector(Collector):
    """Turns the bridge's state into metric families at every scrape."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        node = m.node
        info = InfoMetricFamily(PREFIX + "build", "The bridge's version.")
        info.add_metric([], {"version": __version__, "node": node})
        yield info
        with m.lock:
            totals = {key: dict(values) for key, values in m.books.totals.items()}
            in_flight = dict(m.books.in_flight)
            sessions = dict(m.sessions)
            reconnects = m.ipc_reconnects
            attached = dict(m.attached)
            delays = {
                source: (list(d.counts), d.sum_s, d.last_s) for source, d in m.attach_delays.items()
            }
        yield from self._books(totals, in_flight)

        started = CounterMetricFamily(
            PREFIX + "sessions",
            "Sessions started (node attachments or IPC connections).",
            labels=("node", "source"),
        )
        up = GaugeMetricFamily(
            PREFIX + "session_attached",
            "1 while a session is running (probes live or IPC connected), else 0.",
            labels=("node", "source"),
        )
        for source, count in sorted(sessions.items()):
            started.add_metric([node, source], count)
            up.add_metric([node, source], 1.0 if attached.get(source) else 0.0)
        yield started
        yield up
        yield self._single_counter(
            "ipc_reconnects",
            "IPC sessions opened after an earlier one ended (the node went away and came back).",
            node,
            reconnects,
        )

        failed, skipped = m.bridge_records()
        yield self._single_counter(
            "bridge_records_failed",
            "The bridge's own records (heartbeats, dead letters) Kafka did not take. The "
            "events they describe are counted in the ledger either way.",
            node,
            failed,
        )
        yield self._single_counter(
            "heartbeats_skipped",
            "Periodic heartbeats not produced because the producer queue was full (the "
            "drain loop does not wait for them; the next one carries the same totals).",
            node,
            skipped,
        )

        attach = HistogramMetricFamily(
            PREFIX + "attach_delay_seconds",
            "Per session, from the node process's start to its probes being live (USDT): "
            "what it fired meanwhile was never observable (attach_delay_ns).",
            labels=("node", "source"),
        )
        last = GaugeMetricFamily(
            PREFIX + "last_attach_delay_seconds",
            "The latest session's attach delay.",
            labels=("node", "source"),
        )
        for source, (counts, total, latest) in sorted(delays.items()):
            attach.add_metric([node, source], _histogram_buckets(ATTACH_BOUNDS_S, counts), total)
            if latest is not None:
                last.add_metric([node, source], latest)
        yield attach
        yield last

        counts, sum_ms = m.latency.snapshot()
        latency = HistogramMetricFamily(
            PREFIX + "delivery_latency_seconds",
            "From an event's time (at the probe, or received over IPC) to Kafka's "
            "acknowledgement of its record.",
            labels=("node",),
        )
        latency.add_metric(
            [node],
            _histogram_buckets([b / 1000 for b in m.latency.bounds], counts),
            sum_ms / 1000,
        )
        yield latency

        depth = m.sample_queue_depth()
        queue = GaugeMetricFamily(
            PREFIX + "producer_queue_messages",
            "Records in the Kafka producer: queued or sent and not yet acknowledged.",
            labels=("node",),
        )
        if depth is not None:
            queue.add_metric([node], depth)
        yield queue

        pending = GaugeMetricFamily(
            PREFIX + "ring_pending_bytes",
            "Bytes written by the probes and not yet drained, per ring (USDT).",
            labels=("node", "source", "ring"),
        )
        size = GaugeMetricFamily(
            PREFIX + "ring_size_bytes",
            "Size of each ring (usdt.ring_buffer_kib); a full ring loses events (stage kernel).",
            labels=("node", "source", "ring"),
        )
        for source, ring, used, capacity in m.sample_rings():
            pending.add_metric([node, source, ring], used)
            size.add_metric([node, source, ring], capacity)
        yield pending
        yield size

    @staticmethod
    def _single_counter(name: str, doc: str, node: str, value: int) -> CounterMetricFamily:
        family = CounterMetricFamily(PREFIX + name, doc, labels=("node",))
        family.add_metric([node], value)
        return family

    @staticmethod
    def _books(
        totals: dict[StreamKey, dict[str, int]], in_flight: dict[StreamKey, int]
    ) -> Iterable[Metric]:
        counters = {
            name: CounterMetricFamily(PREFIX + name, doc, labels=STREAM_LABELS)
            for name, doc in COUNTER_HELP.items()
        }
        assert set(counters) == set(COUNTED_FIELDS)
        lost = CounterMetricFamily(
            PREFIX + "events_lost",
            "Events lost, by the stage that lost them (kernel: ring full; bridge: dead "
            "letter or producer queue full; producer: Kafka refused it, or it timed out "
            "before it was sent; node: dropped by the node).",
            labels=(*STREAM_LABELS, "stage"),
        )
        flight = GaugeMetricFamily(
            PREFIX + "events_in_flight",
            "Fired but neither acknowledged, in doubt nor lost at the last heartbeat (in a "
            "ring or the producer).",
            labels=STREAM_LABELS,
        )
        for key, values in sorted(
            totals.items(), key=lambda item: (item[0].source, item[0].stream)
        ):
            labels = [key.node, key.source, key.stream]
            for name, family in counters.items():
                family.add_metric(labels, values[name])
            for stage in LOSS_STAGES:
                lost.add_metric([*labels, stage], values[f"lost:{stage}"])
            flight.add_metric(labels, in_flight.get(key, 0))
        yield from counters.values()
        yield lost
        yield flight
