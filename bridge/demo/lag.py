"""A consumer that reads the demo's topics back, decodes every record, and measures lag.

It is what a downstream user would run, kept deliberately light because it shares the
machine's cores with the node, the broker and the bridge: records are fetched in
batches, counters are published once per batch, and the broker is asked for high
watermarks once per tick. Those questions go through a second, idle client: on the
fetching client's connection each one would queue behind a long-polling fetch and take
up to fetch.wait.max.ms. Offsets are committed under the consumer's own group, so
Kafka's own tools (``kafka-consumer-groups --describe``) see the same lag as the view.

Every record is also counted by its ``source`` header (usdt, ipc), so when the demo
runs both sources into the same topics the view can show what each one wrote.

Partitions are assigned directly, starting at the high watermarks read before the
bridges start (:func:`topic_ends`; a topic created later starts at 0), so the consumer
sees exactly this run's records, including those a bridge writes before any node fires
(an IPC bridge polls the node's state as soon as it is connected), and needs no group
rebalance.
Nothing here may disturb the bridge: every failure is logged, kept for the view, and
ends only this consumer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from bridge.codec.single_object import SchemaStore, committed_schemas

log = logging.getLogger(__name__)

# Records per fetch batch and the longest wait for one: at the demo's rates a batch
# arrives every POLL_S, so the consumer wakes a few times a second, not once per record.
BATCH_MAX = 2000
POLL_S = 0.25
# How often high watermarks are queried and offsets committed.
TICK_S = 1.0
# Rates are averaged over this window: long enough to smooth linger batching (20 ms)
# and heartbeats (every 2 s), short enough to follow a change of load.
RATE_WINDOW_S = 3.0
# Bound on broker round trips, so a broker outage stalls only this thread, briefly.
REQUEST_TIMEOUT_S = 5.0
# The consumer's own client settings: a fetch returns once this much is ready or after
# FETCH_WAIT_MS, which caps how stale the lag can look at low rates.
FETCH_WAIT_MS = 200
FETCH_MAX_BYTES = 16 * 1024 * 1024

Partition = tuple[str, int]


@dataclass(frozen=True)
class TopicLag:
    """One topic as the consumer sees it (partitions added up)."""

    topic: str
    records: int | None  # written to the topic since the consumer started
    per_s: float | None  # records/s written, from high-watermark deltas
    decoded: int
    errors: int
    lag: int | None  # high watermark - position: written but not yet read back
    by_source: Mapping[str, int] = field(default_factory=dict)  # decoded, per source header


@dataclass(frozen=True)
class ConsumerSnapshot:
    """The whole consumer: per topic, plus its health."""

    group_id: str
    topics: tuple[TopicLag, ...]
    failure: str | None = None  # the consumer stopped because of this
    last_error: str | None = None  # the last problem it survived (decode, client, commit)
    marks_at: float = 0.0  # monotonic time the broker was last asked for high watermarks

    @property
    def decoded(self) -> int:
        return sum(t.decoded for t in self.topics)

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.topics)

    def decoded_from(self, source: str, topics: Sequence[str] | None = None) -> int:
        """Records decoded whose ``source`` header is ``source`` (in ``topics``: all)."""
        return sum(
            t.by_source.get(source, 0) for t in self.topics if topics is None or t.topic in topics
        )

    @property
    def lag(self) -> int | None:
        lags = [t.lag for t in self.topics]
        return None if any(v is None for v in lags) else sum(v or 0 for v in lags)


@dataclass
class _State:
    """Mutable counters, touched only by the consumer thread (published as snapshots)."""

    start: dict[Partition, int]
    next_offset: dict[Partition, int]
    high: dict[Partition, int] = field(default_factory=dict)
    decoded: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    by_source: dict[tuple[str, str], int] = field(default_factory=dict)  # (topic, source)
    samples: deque[tuple[float, dict[str, int]]] = field(default_factory=deque)
    marks_at: float = 0.0


class LagConsumer:
    """Reads ``topics`` from their current ends in a background thread."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        *,
        start_at: Mapping[Partition, int] | None = None,
        store: SchemaStore | None = None,
        security: Mapping[str, str] | None = None,
    ) -> None:
        self.group_id = group_id
        self._security = dict(security or {})  # client_security(): TLS/SASL, if any
        self._start_at = start_at  # None: start at the high watermarks found at start()
        self._bootstrap = bootstrap_servers
        self._topics = tuple(topics)
        self._store = store or committed_schemas()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._tick_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._marks: Consumer | None = None  # asks for high watermarks; never fetches
        self._state: _State | None = None
        self._snapshot = ConsumerSnapshot(group_id, ())
        self._last_error: str | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Assign every partition at its starting offset (``start_at``, or else its high
        watermark now), then consume in a thread.

        Runs the setup on the caller's thread so the starting offsets are fixed before
        the caller lets the node fire. A failure is logged and leaves the demo without a
        consumer; it is never raised.
        """
        try:
            self._consumer = consumer = self._new_consumer(fetching=True)
            self._marks = marks = self._new_consumer(fetching=False)
            self._state = state = self._assign(consumer, marks)
        except Exception as error:
            log.exception("The demo's consumer could not start; continuing without it.")
            self._fail(error)
            self._close_consumer()
            return
        self._publish()
        self._thread = threading.Thread(
            target=self._run, args=(consumer, marks, state), name="demo-consumer", daemon=True
        )
        self._thread.start()

    def snapshot(self) -> ConsumerSnapshot:
        with self._lock:
            return self._snapshot

    def caught_up(self, since: float = 0.0) -> bool:
        """True if everything written had been read, by high watermarks the broker gave
        after ``since`` (older marks may predate the last records)."""
        current = self.snapshot()
        return (
            current.failure is None
            and bool(current.topics)
            and current.marks_at > since
            and current.lag == 0
        )

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Let the consumer read everything written before this call; give up after
        ``timeout_s`` (or at once if the consumer is not running)."""
        called = time.monotonic()
        deadline = called + timeout_s
        self._tick_now.set()  # fresh marks now, not at the next regular tick
        while time.monotonic() < deadline:
            if self.caught_up(since=called):
                return True
            if self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(POLL_S)
        return self.caught_up(since=called)

    def stop(self, timeout_s: float = REQUEST_TIMEOUT_S * 2) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ setup
    def _new_consumer(self, *, fetching: bool) -> Consumer:
        role = "" if fetching else "-marks"
        return Consumer(
            {
                **self._security,
                "bootstrap.servers": self._bootstrap,
                "group.id": self.group_id,  # librdkafka wants one even where unused
                "client.id": self.group_id + role,
                "enable.auto.commit": False,  # committed once per tick, see _tick
                "enable.partition.eof": False,
                "fetch.wait.max.ms": FETCH_WAIT_MS,
                "fetch.max.bytes": FETCH_MAX_BYTES,
                "error_cb": self._on_client_error,
                "on_commit": self._on_commit,
                # librdkafka's own lines go through logging, not straight onto the view.
                "logger": logging.getLogger(f"librdkafka.demo-consumer{role}"),
            }
        )

    def _assign(self, consumer: Consumer, marks: Consumer) -> _State:
        metadata = marks.list_topics(timeout=REQUEST_TIMEOUT_S)
        start: dict[Partition, int] = {}
        for topic in self._topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                log.warning("The demo's consumer found no topic %s; not reading it.", topic)
                continue
            for partition in described.partitions:
                if self._start_at is not None:
                    start[(topic, partition)] = self._start_at.get((topic, partition), 0)
                    continue
                _, high = marks.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=REQUEST_TIMEOUT_S
                )
                start[(topic, partition)] = high
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in start.items()])
        state = _State(start=start, next_offset=dict(start), high=dict(start))
        state.decoded = dict.fromkeys(self._topics, 0)
        state.errors = dict.fromkeys(self._topics, 0)
        return state

    # ------------------------------------------------------------------ the thread
    def _run(self, consumer: Consumer, marks: Consumer, state: _State) -> None:
        try:
            next_tick = 0.0
            while not self._stop.is_set():
                for message in consumer.consume(BATCH_MAX, POLL_S):
                    self._take(state, message)
                now = time.monotonic()
                if now >= next_tick or self._tick_now.is_set():
                    self._tick_now.clear()
                    self._tick(consumer, marks, state, now)
                    next_tick = now + TICK_S
                self._publish()
            self._commit(consumer, state, asynchronous=False)
        except Exception as error:
            log.exception("The demo's consumer failed; the live view goes on without it.")
            self._fail(error)
        finally:
            self._close_consumer()

    def _take(self, state: _State, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                self._last_error = f"fetch: {error.str()}"
            return
        topic = message.topic() or ""
        offset = message.offset()
        if offset is not None:
            state.next_offset[(topic, message.partition() or 0)] = offset + 1
        try:
            self._store.decode(message.value() or b"")
        except Exception as failure:  # any undecodable value counts; none may stop us
            state.errors[topic] = state.errors.get(topic, 0) + 1
            self._last_error = f"decode {topic}@{offset}: {failure}"
        else:
            state.decoded[topic] = state.decoded.get(topic, 0) + 1
            key = (topic, _source_of(message))
            state.by_source[key] = state.by_source.get(key, 0) + 1

    def _tick(self, consumer: Consumer, marks: Consumer, state: _State, now: float) -> None:
        asked = time.monotonic()  # the marks below are at least this recent
        complete = True
        for key in state.start:
            try:
                low_high = marks.get_watermark_offsets(
                    TopicPartition(*key), timeout=REQUEST_TIMEOUT_S
                )
            except KafkaException as error:
                self._last_error = f"watermarks {key[0]}: {error}"
                low_high = None
            if low_high is None:
                complete = False
                continue
            state.high[key] = max(state.high.get(key, 0), low_high[1])
        if complete:
            state.marks_at = asked
        state.samples.append((now, self._written(state)))
        while state.samples and now - state.samples[0][0] > RATE_WINDOW_S:
            state.samples.popleft()
        self._commit(consumer, state, asynchronous=True)

    def _commit(self, consumer: Consumer, state: _State, *, asynchronous: bool) -> None:
        offsets = [
            TopicPartition(t, p, offset)
            for (t, p), offset in state.next_offset.items()
            if offset > state.start[(t, p)]
        ]
        if not offsets:
            return
        if asynchronous:
            consumer.commit(offsets=offsets, asynchronous=True)
        else:
            consumer.commit(offsets=offsets, asynchronous=False)

    # ------------------------------------------------------------------ publishing
    def _refresh_marks(self, state: _State) -> None:
        """Between ticks, follow the high watermarks that fetch responses bring (no broker
        round trip), and never report fewer records written than were already read."""
        consumer = self._consumer
        for key, next_offset in state.next_offset.items():
            high = max(state.high.get(key, 0), next_offset)
            if consumer is not None:
                try:
                    marks = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
                except KafkaException:
                    marks = None
                if marks is not None:
                    high = max(high, marks[1])
            state.high[key] = high

    def _written(self, state: _State) -> dict[str, int]:
        written = dict.fromkeys(self._topics, 0)
        for (topic, partition), high in state.high.items():
            written[topic] += high - state.start[(topic, partition)]
        return written

    def _publish(self) -> None:
        state = self._state
        if state is None:
            return
        self._refresh_marks(state)
        written = self._written(state)
        rates: dict[str, float] = {}
        if len(state.samples) >= 2:
            (t0, first), (t1, last) = state.samples[0], state.samples[-1]
            rates = {topic: (last[topic] - first[topic]) / (t1 - t0) for topic in last}
        present = {t for t, _ in state.start}
        topics = []
        for topic in self._topics:
            if topic not in present:
                continue
            lag = sum(
                max(0, state.high[key] - state.next_offset[key])
                for key in state.start
                if key[0] == topic
            )
            topics.append(
                TopicLag(
                    topic=topic,
                    records=written[topic],
                    per_s=rates.get(topic),
                    decoded=state.decoded.get(topic, 0),
                    errors=state.errors.get(topic, 0),
                    lag=lag,
                    by_source={
                        source: n for (t, source), n in state.by_source.items() if t == topic
                    },
                )
            )
        with self._lock:
            self._snapshot = ConsumerSnapshot(
                self.group_id,
                tuple(topics),
                failure=self._snapshot.failure,
                last_error=self._last_error,
                marks_at=state.marks_at,
            )

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            current = self._snapshot
            self._snapshot = ConsumerSnapshot(
                current.group_id, current.topics, f"{type(error).__name__}: {error}", None
            )

    def _close_consumer(self) -> None:
        for client in (self._consumer, self._marks):
            if client is None:
                continue
            try:
                client.close()
            except Exception:
                log.exception("Closing the demo's consumer failed.")
        self._consumer = self._marks = None

    # ------------------------------------------------------------------ callbacks
    def _on_client_error(self, error: KafkaError) -> None:
        self._last_error = f"client: {error.str()}"

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None:
            self._last_error = f"commit: {error.str()}"


def topic_ends(
    bootstrap_servers: str, topics: Sequence[str], security: Mapping[str, str] | None = None
) -> dict[Partition, int] | None:
    """The high watermark of every partition of ``topics`` that exists now: where this
    run's records will begin. None (logged) if Kafka does not answer; the consumer then
    starts at the ends it finds when it starts."""
    client = Consumer(
        {
            **(security or {}),
            "bootstrap.servers": bootstrap_servers,
            "group.id": "tracebridge-demo-ends",  # librdkafka wants one; nothing is committed
            "enable.auto.commit": False,
            "logger": logging.getLogger("librdkafka.demo-consumer-ends"),
        }
    )
    try:
        metadata = client.list_topics(timeout=REQUEST_TIMEOUT_S)
        ends: dict[Partition, int] = {}
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                continue  # not created yet: it will start at offset 0
            for partition in described.partitions:
                _, high = client.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=REQUEST_TIMEOUT_S
                )
                ends[(topic, partition)] = high
        return ends
    except KafkaException:
        log.exception("The demo could not read where its topics end now.")
        return None
    finally:
        client.close()


def _source_of(message: Message) -> str:
    """The bridge's ``source`` header of a record ("usdt", "ipc"); "" if it has none."""
    headers = message.headers() or ()
    pairs = headers.items() if isinstance(headers, dict) else headers  # consumed: a list
    for name, value in pairs:
        if name == "source":
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return ""
