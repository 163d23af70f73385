"""``tracebridge bench audit``: audit millions of records, in one process and in several.

The records are a fleet's, written the way its bridges write them: per node, one
session of ring records of a busy node's mix (bridge/bench/replay.py's STREAM_MIX: P2P
messages, UTXO churn, mempool, blocks), a kernel loss now and then that the next record
of its stream reports in ``lost_before``, encoded by the native encoder draining a ring
(:class:`~bridge.bench.memory_ring.MemoryRing`), produced by the native producer
(:class:`~bridge.sinks.kafka.producer.KafkaSink`) keyed by node, with the bridge's
headers, into topics split into partitions; then each node's SESSION_END ledger. Only
the three header fields of each ring record are written per record in Python; encoding
and producing are the bridge's own C paths, one call per batch of 16,384 records.

Then ``tracebridge audit``'s reading and judging, timed for each worker count asked
(``--workers 1,2``), each verdict required equal to the first and passing: the audit
must find the books closed and every kernel loss accounted for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.bench.memory_ring import MemoryRing, framed
from bridge.bench.replay import LOSS_EVERY, STREAM_MIX, NodeBooks, ring_record
from bridge.codec.native import Encoder, configure
from bridge.codec.single_object import SchemaStore, committed_schemas
from bridge.config import KafkaConfig
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.envelope import SourceKind
from bridge.events.layout import HEADER
from bridge.replay.audit import AuditReport, read_audit
from bridge.replay.audit_workers import read_audit_shared
from bridge.sinks.kafka.producer import Headers, KafkaSink, Route
from bridge.sinks.kafka.topics import all_topics, bridge_topic, ensure_topics, event_topic

BATCH = 16_384  # records per drain, as usdt.max_batch
RING_SIZE = 16 << 20  # holds a batch of the mix's largest records
MESSAGE_MAX_BYTES = 4 << 20
HEARTBEAT = "tracebridge.bridge.Heartbeat"


def _headers(store: SchemaStore, schema: str, node: str) -> Headers:
    """The four headers the bridge puts on every record (bridge/app.py)."""
    known = store.by_name(schema)
    return [
        ("stability", known.stability.encode()),
        ("schema_fp", known.fingerprint.hex().encode()),
        ("source", b"usdt"),
        ("node", node.encode()),
    ]


def produce_node(
    config: KafkaConfig, store: SchemaStore, node: str, records: int, ring: MemoryRing,
    loss_every: int = LOSS_EVERY,
) -> NodeBooks:  # fmt: skip
    """One node's session of ``records`` events and its SESSION_END ledger; every
    ``loss_every``-th event of a stream is lost in the kernel (the next one says so)."""
    books = NodeBooks(node, str(uuid.uuid4()))
    encoder = Encoder()
    configure(encoder, EVENTS, store)
    ktime = time.monotonic_ns() - 300 * 10**9  # minutes ago: well within retention
    encoder.set_session(
        node, SourceKind.USDT, books.session_id, time.time_ns() - time.monotonic_ns()
    )
    specs = {stream: BY_NAME[stream] for stream, _ in STREAM_MIX}
    # Per position of the schedule: stream, tp_id and its framed ring record.
    schedule = [
        (stream, specs[stream].tp_id, framed(bytes(ring_record(specs[stream], len(node)))))
        for stream, weight in STREAM_MIX
        for _ in range(weight)
    ]
    fired = dict.fromkeys(specs, 0)
    kernel = dict.fromkeys(specs, 0)
    sink = KafkaSink(config, node.encode(), MESSAGE_MAX_BYTES)
    sink.start_session(
        {
            spec.tp_id: Route(
                event_topic(config.topic_prefix, spec.subsystem),
                _headers(store, full_name(event_schema(spec)), node),
                spec.tp_id,
            )
            for spec in specs.values()
        },
        lambda *_: None,
    )
    data, pack = ring.data, HEADER.pack_into
    done = 0
    try:
        while done < records:
            count = min(BATCH, records - done)
            offset = 0
            for i in range(done, done + count):
                stream, tp_id, frame = schedule[i % len(schedule)]
                seq = fired[stream] + 1
                lost_before = 0
                if seq % loss_every == 0:  # its ring was full: the next record reports it
                    kernel[stream] += 1
                    seq += 1
                    lost_before = 1
                fired[stream] = seq
                ktime += 1_000
                end = offset + len(frame)
                data[offset:end] = frame
                pack(data, offset + 8, seq, ktime, lost_before, tp_id, 0, 0)
                offset = end
            ring.commit(offset)
            good, dead, _ = ring.drain(encoder, count)
            if dead or len(good) != count:
                raise RuntimeError(
                    f"the encoder refused {len(dead)} benchmark record(s): {dead[:1]}"
                )
            sent = 0
            while sent < count:  # a full queue: serve acks, then hand over the rest
                sent += sink.produce_events(good[sent:])
                sink.poll(0 if sent == count else 0.05)
            done += count
        for stream in specs:
            books.fired[stream] = fired[stream]
            books.kernel[stream] = kernel[stream]
            books.delivered[stream] = fired[stream] - kernel[stream]
        value = store.encode(HEARTBEAT, books.heartbeat())
        sink.produce_bridge_record(
            bridge_topic(config.topic_prefix), value, _headers(store, HEARTBEAT, node)
        )
        if sink.flush(300):
            raise RuntimeError(f"{node}: records were not all acknowledged")
        if any(sink.failed):
            raise RuntimeError(f"{node}: Kafka refused {sum(sink.failed)} record(s)")
    finally:
        sink.close()
    return books


def produce_fleet(
    bootstrap: str, prefix: str, records: int, nodes: int, partitions: int,
    say: Callable[[str], None] = lambda _: None, loss_every: int = LOSS_EVERY,
) -> list[NodeBooks]:  # fmt: skip
    """``records`` events over ``nodes`` nodes into ``prefix``'s topics."""
    store = committed_schemas()
    config = KafkaConfig(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        partitions=partitions,
        linger_ms=50,
        queue_full_timeout_ms=1000,
    )
    ensure_topics(config, all_topics(prefix), MESSAGE_MAX_BYTES)
    ring = MemoryRing(RING_SIZE)
    out = []
    for n in range(nodes):
        share = records // nodes + (1 if n < records % nodes else 0)
        out.append(produce_node(config, store, f"bench-node-{n + 1}", share, ring, loss_every))
        say(f"bench-node-{n + 1}: {share:,} records produced")
    return out


@dataclass
class AuditRun:
    workers: int
    seconds: float
    records: int
    ok: bool
    same_verdict: bool


@dataclass
class AuditBenchResult:
    prefix: str
    records: int
    nodes: int
    partitions: int
    produce_s: float | None
    runs: list[AuditRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok and r.same_verdict for r in self.runs)


def time_audit(bootstrap: str, prefix: str, workers: int) -> tuple[float, AuditReport]:
    """What ``tracebridge audit --require-closed --workers N`` spends: read, merge, judge."""
    began = time.perf_counter()
    if workers > 1:
        audit = read_audit_shared(bootstrap, prefix, workers=workers)
    else:
        audit = read_audit(bootstrap, prefix)
    report = audit.judge(require_closed=True)
    return time.perf_counter() - began, report


def run_audit_bench(
    bootstrap: str, records: int, *, nodes: int, partitions: int, workers: Sequence[int],
    repeat: int = 1, prefix: str | None = None, say: Callable[[str], None] = lambda _: None,
) -> AuditBenchResult:  # fmt: skip
    """Produce (unless ``prefix`` names topics already written), then time the audit
    with each worker count, ``repeat`` rounds in turn."""
    produce_s = None
    if prefix is None:
        prefix = f"benchaudit{int(time.time())}{uuid.uuid4().hex[:4]}"
        say(f"producing {records:,} records of {nodes} nodes into {prefix}.* ...")
        began = time.perf_counter()
        produce_fleet(bootstrap, prefix, records, nodes, partitions, say)
        produce_s = time.perf_counter() - began
    result = AuditBenchResult(prefix, records, nodes, partitions, produce_s)
    first: dict[str, Any] | None = None
    for _ in range(repeat):
        for count in workers:
            seconds, report = time_audit(bootstrap, prefix, count)
            verdict = report.as_dict()
            first = first if first is not None else verdict
            read = sum(s.gaps.records for s in report.streams)
            result.runs.append(AuditRun(count, seconds, read, report.ok, verdict == first))
            say(f"audit with {count} worker(s): {seconds:.2f} s")
    result.records = result.runs[0].records if result.runs else records
    return result


def format_audit_bench(result: AuditBenchResult) -> str:
    """The table the README quotes."""
    lines = []
    if result.produce_s is not None:
        rate = result.records / result.produce_s
        lines.append(
            f"{result.records:,} records of {result.nodes} nodes produced in "
            f"{result.produce_s:.1f} s ({rate:,.0f}/s), {result.partitions} partitions per topic"
        )
    lines += [
        "| workers | seconds | records/s | speed-up | verdict | same as first |",
        "|---|---|---|---|---|---|",
    ]
    base = next((r.seconds for r in result.runs if r.workers == 1), None)
    for run in result.runs:
        speedup = f"{base / run.seconds:.2f}x" if base else "-"
        lines.append(
            f"| {run.workers} | {run.seconds:.2f} | {run.records / run.seconds:,.0f} | {speedup} | "
            f"{'ok' if run.ok else 'FAIL'} | {'yes' if run.same_verdict else 'NO'} |"
        )
    return "\n".join(lines)
