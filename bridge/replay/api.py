"""The replay API: typed events out of Kafka, for notebooks, jobs and the CLI.

::

    from datetime import datetime, timezone
    from bridge.replay import read_events

    start = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
    for event in read_events("kafka1:9092", ["tracebridge.mempool"],
                             nodes=["node-a"], streams=["mempool:added"], start=start):
        print(event.node_id, event.seq, event.ts_wall_ns, event.fields["txid_hex"])

Every record is decoded whatever its encoding, detected per record (Avro single-object,
or the Confluent wire format when the store has a registry resolver), by
:class:`~bridge.codec.fast_decode.FastDecoder`: natively where it can, by fastavro
otherwise, with the same result. ``read_events`` puts each (node, session, stream) in
seq order (:mod:`bridge.replay.ordering`); ``read_records`` is the raw partition order
with the bridge's own records and undecodable ones included. See docs/replay.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Message

from bridge.codec.fast_decode import FastDecoder
from bridge.codec.single_object import SchemaStore, SingleObjectError, committed_schemas
from bridge.replay.events import BridgeRecord, Event, Undecodable
from bridge.replay.gaps import StreamTrace
from bridge.replay.kafka_range import RangeReader, Window, to_ns
from bridge.replay.ordering import DEFAULT_WINDOW, SeqOrder
from bridge.replay.selection import Selection

MAX_EXAMPLES = 20


@dataclass
class ReadStats:
    """What a read saw, for the summary a replay prints (and the gap report)."""

    messages: int = 0
    events: int = 0
    bridge_records: int = 0
    undecodable: int = 0
    undecodable_examples: list[Undecodable] = field(default_factory=list)
    skipped: int = 0  # not selected (node, stream, time)
    late: int = 0  # arrived after later seqs of their stream had left the reorder buffer
    missing_topics: list[str] = field(default_factory=list)
    traces: dict[tuple[str, str, str], StreamTrace] = field(default_factory=dict)


def read_records(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    window: Window | None = None,
    nodes: Sequence[str] | None = None,
    streams: Iterable[str] | None = None,
    store: SchemaStore | None = None,
    stats: ReadStats | None = None,
    consumer_config: dict[str, Any] | None = None,
    native_decode: bool = True,
) -> Iterator[Event | BridgeRecord | Undecodable]:
    """Every selected record of ``topics`` in partition order, decoded and typed.

    Event records are filtered by node, stream and exact event time; heartbeats and
    dead letters by node; undecodable records are always yielded (they cannot be
    filtered and must not vanish silently).
    """
    window = window or Window()
    stats = stats if stats is not None else ReadStats()
    decoder = FastDecoder(store or committed_schemas(), native=native_decode)
    decode = decoder.decode
    selection = Selection(decoder.store, nodes, streams)
    skips = selection.skips_value if selection.skip_fingerprints else None
    node_set = selection.nodes
    stream_set = selection.streams
    admits = window.admits if window.has_time else None
    traces = stats.traces
    with RangeReader(bootstrap_servers, topics, window, config=consumer_config) as reader:
        stats.missing_topics = list(reader.missing_topics)
        for batch in reader.batches():
            stats.messages += len(batch)
            events = skipped = 0  # counted per batch: attribute updates per record cost
            for message in batch:
                value = message.value() or b""
                if skips is not None and skips(value):
                    skipped += 1
                    continue
                try:
                    known, record = decode(value)
                except SingleObjectError as error:
                    yield _undecodable(stats, message, str(error))
                    continue
                envelope = record.pop("envelope", None)
                if envelope is None:  # the bridge's own records have no envelope
                    if node_set is not None and record.get("node_id") not in node_set:
                        skipped += 1
                        continue
                    stats.bridge_records += 1
                    yield BridgeRecord(
                        known.full_name,
                        record,
                        message.topic() or "",
                        message.partition() or 0,
                        message.offset() or 0,
                        message.timestamp()[1],
                    )
                    continue
                if (
                    (node_set is not None and envelope["node_id"] not in node_set)
                    or (stream_set is not None and envelope["stream"] not in stream_set)
                    or (admits is not None and not admits(envelope["ts_wall_ns"]))
                ):
                    skipped += 1
                    continue
                events += 1
                key = (envelope["node_id"], envelope["session_id"], envelope["stream"])
                trace = traces.get(key)
                if trace is None:
                    trace = traces[key] = StreamTrace()
                trace.add(envelope["seq"], envelope["lost_before"])
                yield Event(
                    known.full_name,
                    envelope,
                    record,
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                    message.timestamp()[1],
                )
            stats.events += events
            stats.skipped += skipped


def _undecodable(stats: ReadStats, message: Message, error: str) -> Undecodable:
    bad = Undecodable(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        error,
    )
    stats.undecodable += 1
    if len(stats.undecodable_examples) < MAX_EXAMPLES:
        stats.undecodable_examples.append(bad)
    return bad


def read_events(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    nodes: Sequence[str] | None = None,
    streams: Iterable[str] | None = None,
    start: datetime | int | None = None,
    end: datetime | int | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
    ordered: bool = True,
    reorder_window: int = DEFAULT_WINDOW,
    store: SchemaStore | None = None,
    stats: ReadStats | None = None,
    on_bridge_record: Callable[[BridgeRecord], None] | None = None,
    consumer_config: dict[str, Any] | None = None,
    native_decode: bool = True,
) -> Iterator[Event]:
    """The selected events of ``topics``, each (node, session, stream) in seq order.

    ``start``/``end`` bound the event time (``datetime`` with a time zone, or int ns
    since the epoch; ``end`` exclusive); ``start_offset``/``end_offset`` bound every
    partition's offsets. ``ordered=False`` keeps Kafka's partition order (cheaper).
    ``stats`` collects counts and each stream's trace (its seqs and lost_before), from which
    :func:`bridge.replay.gaps.find_gaps` reports the gaps. Heartbeats in ``topics``
    (``<prefix>.bridge``) go to ``on_bridge_record`` if given, never to the iterator.
    ``native_decode=False`` decodes with fastavro alone (same values, slower).
    """
    window = Window(
        start_ns=to_ns(start),
        end_ns=to_ns(end),
        start_offset=start_offset,
        end_offset=end_offset,
    )
    order = SeqOrder(reorder_window) if ordered else None
    stats = stats if stats is not None else ReadStats()
    records = read_records(
        bootstrap_servers,
        topics,
        window=window,
        nodes=nodes,
        streams=streams,
        store=store,
        stats=stats,
        consumer_config=consumer_config,
        native_decode=native_decode,
    )
    for item in records:
        if isinstance(item, Event):
            if order is None:
                yield item
            else:
                yield from order.push(item)
        elif isinstance(item, BridgeRecord) and on_bridge_record is not None:
            on_bridge_record(item)
    if order is not None:
        yield from order.flush()
        stats.late = order.late
