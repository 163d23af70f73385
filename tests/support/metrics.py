"""Scraping the bridge's Prometheus endpoint over HTTP, as Prometheus does (tests only)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bridge.events.envelope import LOSS_STAGES, SourceKind
from bridge.ledger import StreamLedger
from bridge.metrics.state import BridgeMetrics


def scrape_text(port: int, host: str = "127.0.0.1") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text: str = response.read().decode()
    return text


# Counter (without _total) -> the SESSION_END book's field it must equal.
COUNTERS = {
    "tracebridge_events_fired": "fired",
    "tracebridge_events_captured": "captured",
    "tracebridge_events_produced": "produced",
    "tracebridge_events_delivered": "acked",
    "tracebridge_dead_letters": "dead_lettered",
    "tracebridge_events_in_doubt": "in_doubt",
}
Totals = dict[tuple[str, str], int]  # (metric, or metric:stage for losses; stream) -> value


def ledger_totals(books: Iterable[Mapping[str, Any]]) -> Totals:
    """What every counter must say, summed over SESSION_END ``books`` (their streams)."""
    expected: Totals = defaultdict(int)
    for book in books:
        for metric, field in COUNTERS.items():
            expected[(metric, book["stream"])] += book[field]
        for stage in LOSS_STAGES:
            expected[(f"tracebridge_events_lost:{stage}", book["stream"])] += book["lost"][stage]
    return dict(expected)


def scraped_totals(text: str, node: str, source: str) -> Totals:
    """The counters a scrape says, in :func:`ledger_totals`' form; every stream series
    must carry ``node`` and ``source``, and nothing may be in flight (books closed)."""
    got: Totals = {}
    for sample in samples(text):
        name = sample.name.removesuffix("_total")
        if name in COUNTERS:
            got[(name, sample.labels["stream"])] = int(sample.value)
        elif name == "tracebridge_events_lost":
            got[(f"{name}:{sample.labels['stage']}", sample.labels["stream"])] = int(sample.value)
        elif name == "tracebridge_events_in_flight":
            assert sample.value == 0, sample  # SESSION_END: nothing in flight
        if name.startswith("tracebridge_events") or name == "tracebridge_dead_letters":
            assert sample.labels["node"] == node
            assert sample.labels["source"] == source
    return got


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels``."""
    found = [
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


class RingedSession:
    """A session with rings, as the USDT source's sessions have."""

    def ring_fill(self) -> list[tuple[str, int, int]]:
        return [("net", 1024, 16 * 1024 * 1024), ("mempool", 0, 4 * 1024 * 1024)]


def populated_metrics(node: str = "n1") -> BridgeMetrics:
    """Metrics with every family holding samples: two USDT sessions (one running), an
    IPC reconnect, books with losses at every stage, delivered records."""
    metrics = BridgeMetrics(node, lambda: 12)
    for session_id in ("s1", "s2"):
        metrics.session_started(SourceKind.USDT, RingedSession(), 140_000_000)
        metrics.observe_books(
            SourceKind.USDT,
            session_id,
            [
                StreamLedger(
                    stream="net:inbound_message",
                    fired=100,
                    captured=90,
                    produced=88,
                    acked=85,
                    dead_lettered=2,
                    last_seq=100,
                    lost={"kernel": 10, "bridge": 2, "producer": 1, "node": 0},
                )
            ],
        )
    metrics.session_started(SourceKind.IPC, object(), None)
    metrics.session_ended()
    metrics.session_started(SourceKind.IPC, object(), None)
    metrics.latency.observe_ms(0)
    metrics.session_ended()
    metrics.session_started(SourceKind.USDT, RingedSession(), 90_000_000)
    return metrics
