"""Reading a bounded range of Kafka partitions, a batch of messages at a time.

A replay is a bounded read: each partition from a start offset to an end offset fixed
when the read begins, so a topic that keeps growing does not keep the read going. Start
and end come from an offset range, from an event-time range (``offsets_for_times`` on
the message timestamps, which the bridge sets to the event's wall-clock time), or both.

Message timestamps are only roughly ordered within a partition (several nodes and
streams share one; a drained batch is produced in ring order), so the time lookup is
widened by ``slack_ms`` on both sides and the caller filters each event by its exact
``ts_wall_ns``: the offsets bound the work, the envelope decides.

Throughput: ``consume(num_messages=...)`` returns thousands of messages per call, and
the fetch sizes below keep librdkafka's queue full (with librdkafka's defaults, a 1 MiB
fetch per partition, one process reads ~150k small records/s; with these, ~750k/s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

BATCH_SIZE = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_SLACK_MS = 10_000
# How long a read may see nothing before it gives up on the partitions left: long
# enough for a slow broker, short enough that a read cut off by deleted records ends.
IDLE_TIMEOUT_S = 15.0

CONSUMER_DEFAULTS: dict[str, Any] = {
    "group.id": "tracebridge-replay",  # required by librdkafka; nothing is committed
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "queued.max.messages.kbytes": 256 * 1024,
}


class ReplayError(BridgeError):
    """A replay that cannot be done as asked (missing topics, a broker error)."""


def to_ns(when: datetime | int | None) -> int | None:
    """A time bound in ns since the UNIX epoch (ints are taken as ns already)."""
    if when is None or isinstance(when, int):
        return when
    if when.tzinfo is None:
        raise ReplayError(f"time {when.isoformat()} has no time zone; say e.g. +00:00 or Z")
    return (when - EPOCH) // timedelta(microseconds=1) * 1000  # exact: no float on the way


@dataclass(frozen=True)
class Window:
    """What part of each partition to read. All bounds are optional; ends are exclusive."""

    start_ns: int | None = None  # event time (envelope ts_wall_ns), inclusive
    end_ns: int | None = None
    start_offset: int | None = None  # the same for every partition read
    end_offset: int | None = None
    slack_ms: int = DEFAULT_SLACK_MS

    @property
    def has_time(self) -> bool:
        return self.start_ns is not None or self.end_ns is not None

    @property
    def from_start(self) -> bool:
        """Reads from each partition's first record (so a session's first seq is in it)."""
        return self.start_ns is None and not self.start_offset

    @property
    def to_end(self) -> bool:
        """Reads to each partition's end (so a session's last records are in it)."""
        return self.end_ns is None and self.end_offset is None

    def admits(self, ts_wall_ns: int) -> bool:
        if self.start_ns is not None and ts_wall_ns < self.start_ns:
            return False
        return self.end_ns is None or ts_wall_ns < self.end_ns


@dataclass(frozen=True)
class Span:
    """Offsets [start, end) of one partition to read."""

    topic: str
    partition: int
    start: int
    end: int


def consumer(bootstrap_servers: str, overrides: dict[str, Any] | None = None) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        **CONSUMER_DEFAULTS,
        "logger": logging.getLogger("librdkafka"),
    }
    conf.update(overrides or {})
    return Consumer(conf)


def _time_offsets(
    client: Consumer, partitions: list[TopicPartition], ms: int
) -> dict[tuple[str, int], int]:
    """Earliest offset with a timestamp >= ms per partition (-1: none)."""
    query = [TopicPartition(tp.topic, tp.partition, ms) for tp in partitions]
    found = client.offsets_for_times(query, timeout=15)
    return {(tp.topic, tp.partition): tp.offset for tp in found}


def plan_spans(
    client: Consumer, topics: Sequence[str], window: Window
) -> tuple[list[Span], list[str]]:
    """The span of every partition of ``topics`` (and the topics that do not exist)."""
    metadata = client.list_topics(timeout=15)
    partitions: list[TopicPartition] = []
    missing = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            missing.append(topic)
            continue
        partitions.extend(TopicPartition(topic, p) for p in sorted(meta.partitions))
    starts: dict[tuple[str, int], int] = {}
    ends: dict[tuple[str, int], int] = {}
    if partitions and window.start_ns is not None:
        starts = _time_offsets(client, partitions, window.start_ns // 1_000_000 - window.slack_ms)
    if partitions and window.end_ns is not None:
        ends = _time_offsets(client, partitions, -(-window.end_ns // 1_000_000) + window.slack_ms)
    spans = []
    for tp in partitions:
        low, high = client.get_watermark_offsets(tp, timeout=15)
        start, end = low, high
        key = (tp.topic, tp.partition)
        if window.start_offset is not None:
            start = max(start, window.start_offset)
        if window.end_offset is not None:
            end = min(end, window.end_offset)
        if key in starts:
            start = max(start, starts[key] if starts[key] >= 0 else high)
        if key in ends and ends[key] >= 0:
            end = min(end, ends[key])
        spans.append(Span(tp.topic, tp.partition, start, max(start, end)))
    return spans, missing


class RangeReader:
    """Messages of some topics' partitions within a window, in batches.

    Messages come in each partition's order; partitions interleave as librdkafka
    fetches them. Messages outside a partition's span are never returned.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        window: Window | None = None,
        *,
        config: dict[str, Any] | None = None,
        batch_size: int = BATCH_SIZE,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        spans: Sequence[Span] | None = None,
    ) -> None:
        """``spans`` (planned elsewhere, e.g. one worker's share) replaces planning
        ``topics`` within ``window``."""
        self.window = window or Window()
        self.batch_size = batch_size
        self.idle_timeout_s = idle_timeout_s
        self._consumer = consumer(bootstrap_servers, config)
        self.missing_topics: list[str] = []
        if spans is not None:
            self.spans = list(spans)
        else:
            self.spans, self.missing_topics = plan_spans(self._consumer, topics, self.window)
        for topic in self.missing_topics:
            log.debug("Topic %s does not exist; nothing to read from it.", topic)

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def batches(self) -> Iterator[list[Message]]:
        """Non-empty lists of messages until every span is read."""
        ends = {(s.topic, s.partition): s.end for s in self.spans if s.end > s.start}
        if not ends:
            return
        self._consumer.assign(
            [TopicPartition(s.topic, s.partition, s.start) for s in self.spans if s.end > s.start]
        )
        consume = self._consumer.consume
        last_seen = time.monotonic()
        while ends:
            messages = consume(num_messages=self.batch_size, timeout=0.5)
            if not messages:
                if time.monotonic() - last_seen > self.idle_timeout_s:
                    log.warning(
                        "Nothing arrived for %.0f s; stopping with %d partition(s) unfinished "
                        "(records deleted or compacted away?): %s.",
                        self.idle_timeout_s,
                        len(ends),
                        ", ".join(f"{t}[{p}]" for t, p in sorted(ends)),
                    )
                    return
                continue
            last_seen = time.monotonic()
            batch = self._keep(messages, ends)
            if batch:
                yield batch

    def _keep(self, messages: list[Message], ends: dict[tuple[str, int], int]) -> list[Message]:
        """The messages inside their spans; partitions read to their end are dropped."""
        kept = []
        finished: list[tuple[str, int]] = []
        for message in messages:
            error = message.error()
            key = (message.topic() or "", message.partition() or 0)
            end = ends.get(key)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if end is not None:
                        finished.append(key)
                        del ends[key]
                    continue
                raise ReplayError(f"Kafka consumer error on {key[0]}[{key[1]}]: {error.str()}")
            if end is None:
                continue
            offset = message.offset() or 0
            if offset < end:
                kept.append(message)
            if offset + 1 >= end:
                finished.append(key)
                del ends[key]
        if finished:
            self._consumer.incremental_unassign([TopicPartition(t, p) for t, p in finished])
        return kept
