"""``tracebridge audit --workers N``: several processes share the partitions, one verdict.

An audit's cost is reading: fetching every record and decoding its envelope. Judging
is cheap, because the books keep each stream's seqs as runs (bridge/replay/gaps.py).
One process reads about 400k records/s, so a fleet's 10 million records take half a
minute, and the reading is what more processes can share. Here the partitions of every
event topic and of the ledger are planned once (each from its first offset to its end
at this moment). They are dealt out to N worker processes by record count, largest
first. Each worker reads its share into books of its own (:class:`Audit`), and the
parent merges them and judges. The verdict is exactly the one a single process reaches
on the same partitions (``Audit.merge``): a stream whose records one worker read and
whose SESSION_END another read is judged on both.

Why explicit assignment rather than a consumer group: an audit is a bounded read. A
group's members would each have to learn where to stop, wait for a join and a
rebalance, and could have partitions moved between them mid-read. Planned spans give
every partition to exactly one worker for the whole read, with no coordination and
nothing committed. The partial books are plain picklable values, so the same merge
would serve readers on several machines.

Workers are spawned, not forked: the parent has already held a librdkafka client, and
a fork would copy its state without its threads.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from bridge.codec.registry import RegistryConfig, RegistryResolver
from bridge.codec.single_object import SchemaStore, committed_schemas
from bridge.replay.audit import Audit, audit_topics, read_books
from bridge.replay.kafka_range import RangeReader, Span, Window, consumer, plan_spans


def plan(
    bootstrap_servers: str, topics: Sequence[str], config: dict[str, Any] | None = None
) -> list[Span]:
    """Every partition of ``topics`` from its first record to its end, as of now."""
    client = consumer(bootstrap_servers, config)
    try:
        spans, _ = plan_spans(client, topics, Window())
    finally:
        client.close()
    return spans


def share_out(spans: Sequence[Span], workers: int) -> list[list[Span]]:
    """The non-empty spans dealt to at most ``workers`` shares, largest first, each to
    the share with the fewest records so far (no share is left empty)."""
    shares: list[list[Span]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for span in sorted(spans, key=lambda s: (s.start - s.end, s.topic, s.partition)):
        if span.end <= span.start:
            continue
        lightest = loads.index(min(loads))
        shares[lightest].append(span)
        loads[lightest] += span.end - span.start
    return [share for share in shares if share]


@dataclass(frozen=True)
class ShareJob:
    """What one worker needs: picklable, so it crosses to a spawned process."""

    bootstrap_servers: str
    spans: tuple[Span, ...]
    nodes: tuple[str, ...] | None
    registry_url: str | None
    consumer_config: dict[str, Any] | None


def store_for_url(registry_url: str | None) -> SchemaStore:
    """The committed schemas, and the registry's when records were written through one."""
    store = committed_schemas()
    if registry_url:
        store = store.with_resolver(RegistryResolver.from_config(RegistryConfig(url=registry_url)))
    return store


def read_share(job: ShareJob) -> Audit:
    """One worker: the books of its spans."""
    with RangeReader(
        job.bootstrap_servers, [], spans=job.spans, config=job.consumer_config
    ) as reader:
        return read_books(reader, Audit(job.nodes), store_for_url(job.registry_url))


def read_audit_shared(
    bootstrap_servers: str,
    prefix: str,
    *,
    workers: int,
    nodes: Sequence[str] | None = None,
    registry_url: str | None = None,
    consumer_config: dict[str, Any] | None = None,
) -> Audit:
    """The books of every event topic of ``prefix`` and its ledger, read by ``workers``
    processes and merged (see the module docstring)."""
    spans = plan(bootstrap_servers, audit_topics(prefix, committed_schemas()), consumer_config)
    jobs = [
        ShareJob(
            bootstrap_servers,
            tuple(share),
            tuple(nodes) if nodes else None,
            registry_url,
            consumer_config,
        )
        for share in share_out(spans, workers)
    ]
    merged = Audit(nodes)
    if len(jobs) <= 1:  # nothing to share: no process to spawn
        for job in jobs:
            merged.merge(read_share(job))
        return merged
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
        for part in pool.map(read_share, jobs):
            merged.merge(part)
    return merged
