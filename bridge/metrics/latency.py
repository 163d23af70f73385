"""Delivery latency (event time to Kafka's acknowledgement) as histogram buckets.

The observation is made once per record in the native producer's delivery report
(``bridge/sinks/kafka/_producer.c``), with these bounds and the rule of
:meth:`LatencyBuckets.observe_ms`: no Python runs per record. A
``prometheus_client.Histogram`` would take a lock and walk its buckets per record; here
the scrape reads the buckets whole.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from time import time_ns

# Upper bounds in milliseconds: the record's Kafka timestamp, which is its event time,
# has millisecond resolution. From the 5 ms poll interval to message_timeout_ms.
BOUNDS_MS: tuple[int, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
)


class LatencyBuckets:
    """Counts per bucket (the last one is +Inf) and the sum, in milliseconds."""

    def __init__(self) -> None:
        self.bounds = BOUNDS_MS
        self.counts = [0] * (len(BOUNDS_MS) + 1)
        self.sum_ms = [0]
        self._reader: Callable[[], tuple[list[int], int]] | None = None

    def observe_ms(self, event_ms: int) -> None:
        """One record acknowledged now whose event time was ``event_ms`` (wall clock).
        The sink inlines this body in its callback; this method is its reference."""
        latency = time_ns() // 1_000_000 - event_ms
        if latency < 0:  # the wall clock stepped back
            latency = 0
        self.counts[bisect_left(self.bounds, latency)] += 1
        self.sum_ms[0] += latency

    def read_from(self, reader: Callable[[], tuple[list[int], int]]) -> None:
        """Take the figures from ``reader`` from now on: the native producer observes
        each delivery in C with these bounds and this rule (see :meth:`observe_ms`)."""
        self._reader = reader

    def snapshot(self) -> tuple[list[int], int]:
        """(counts per bucket, sum in ms), read together."""
        if self._reader is not None:
            return self._reader()
        return list(self.counts), self.sum_ms[0]
