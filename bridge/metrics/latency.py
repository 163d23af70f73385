"""Delivery latency (event time to Kafka's acknowledgement) as histogram buckets.

The observation is made in the Kafka sink's delivery callback, once per record, so it
is kept to a few bytecodes: an integer millisecond difference, one ``bisect`` over a
short tuple, and two list increments. A ``prometheus_client.Histogram`` would take a
lock and walk its buckets in Python per record; here the buckets are plain lists that
the scrape reads (under the GIL a list of ints is read consistently enough for a
histogram: the count is the sum of the buckets it read).
"""

from __future__ import annotations

from bisect import bisect_left
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
        self.sum_ms = [0]  # a one-element list, so the callback's closure can add to it

    def observe_ms(self, event_ms: int) -> None:
        """One record acknowledged now whose event time was ``event_ms`` (wall clock).
        The sink inlines this body in its callback; this method is its reference."""
        latency = time_ns() // 1_000_000 - event_ms
        if latency < 0:  # the wall clock stepped back
            latency = 0
        self.counts[bisect_left(self.bounds, latency)] += 1
        self.sum_ms[0] += latency

    def snapshot(self) -> tuple[list[int], int]:
        """(counts per bucket, sum in ms), read together."""
        return list(self.counts), self.sum_ms[0]
