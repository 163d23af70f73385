"""``tracebridge replay``: read a range of events back, decoded, ordered, as files or topics."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO

import click

from bridge.cli.replay_options import (
    chosen_streams,
    chosen_topics,
    connection_options,
    range_options,
    selection_options,
    store_for,
    window_from,
)
from bridge.codec.single_object import SchemaStore
from bridge.replay.api import ReadStats, read_events
from bridge.replay.audit import Audit
from bridge.replay.events import HEARTBEAT, BridgeRecord, Event
from bridge.replay.gaps import DEFAULT_TOLERANCE
from bridge.replay.merge import merge_by_time
from bridge.replay.ordering import DEFAULT_WINDOW
from bridge.replay.parquet import ParquetWriter
from bridge.replay.report import format_gaps
from bridge.replay.republish import republish
from bridge.replay.selection import ledger_topic, prefix_of
from bridge.replay.writers import CsvWriter, EventWriter, JsonLinesWriter, columns_for


def _writer(
    fmt: str, output: str, store: SchemaStore, streams: frozenset[str] | None, stack: ExitStack
) -> EventWriter:
    if fmt == "parquet":
        if output == "-":
            if sys.stdout.isatty():
                raise click.UsageError("Parquet is binary: give -o FILE or redirect stdout")
            return ParquetWriter(sys.stdout.buffer, columns_for(store, streams))
        return ParquetWriter(output, columns_for(store, streams))
    out: IO[str] = stack.enter_context(click.open_file(output, "w"))
    if fmt == "csv":
        return CsvWriter(out, columns_for(store, streams))
    return JsonLinesWriter(out)


@click.command("replay")
@click.argument("topics", nargs=-1)
@connection_options
@selection_options
@range_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
    help="Output format (parquet needs the 'parquet' extra).",
)
@click.option("--output", "-o", default="-", show_default=True, help="Output file ('-': stdout).")
@click.option("--merge", is_flag=True, help="Interleave all nodes by event time (held in memory).")
@click.option("--no-order", is_flag=True, help="Keep Kafka's order (no per-stream seq order).")
@click.option(
    "--reorder-window",
    type=click.IntRange(min=1),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="Records held per stream to restore seq order.",
)
@click.option(
    "--gaps/--no-gaps", default=True, show_default=True, help="Report seq gaps on stderr."
)
@click.option(
    "--tolerance",
    type=click.IntRange(min=0),
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="How many records away a lost_before may cover a gap (see `audit --help`).",
)
@click.option(
    "--republish",
    "republish_mode",
    is_flag=True,
    help="Copy the selected records into <prefix>.replay.* topics instead of writing them.",
)
@click.option(
    "--ledger/--no-ledger",
    default=True,
    show_default=True,
    help="With --republish: copy the selected nodes' heartbeats to <prefix>.replay.bridge.",
)
def replay_command(
    topics: tuple[str, ...],
    bootstrap_servers: str,
    registry_url: str | None,
    kafka_security: dict[str, str],
    prefix: str,
    nodes: tuple[str, ...],
    streams: tuple[str, ...],
    start: str | None,
    end: str | None,
    start_offset: int | None,
    end_offset: int | None,
    fmt: str,
    output: str,
    merge: bool,
    no_order: bool,
    reorder_window: int,
    gaps: bool,
    tolerance: int,
    republish_mode: bool,
    ledger: bool,
) -> None:
    """Read events back from TOPICS (default: every event topic of --prefix), decoded
    whatever their encoding (Avro single-object, or Confluent wire format with
    --registry-url), each (node, session, stream) in seq order, as JSON lines, CSV or
    Parquet. The gaps in each stream read are reported on stderr with what accounts for
    each (lost_before, a neighbour's lost_before, producer losses or the ledger); a
    range that does not start at the beginning or run to the end is judged only inside.

    With --republish, the selected records are copied unchanged (value, key, timestamp,
    headers, partition) into <prefix>.replay.<subsystem>, plus a 'replayed' header
    naming the original topic/partition/offset.

    \b
    Examples:
      tracebridge replay --stream mempool:added --start 2026-11-22T10:00Z -o added.jsonl
      tracebridge replay --node a --node b --stream validation --merge --format csv
      tracebridge replay --stream net --start-offset 1000 --format parquet -o n.parquet
      tracebridge replay --node a --start 2026-11-22T10:00Z --republish
    """
    store = store_for(registry_url)
    chosen = chosen_streams(streams, store)
    read_topics = chosen_topics(topics, prefix, chosen, store)
    window = window_from(start, end, start_offset, end_offset)
    if republish_mode:
        report = republish(
            bootstrap_servers,
            read_topics,
            window=window,
            nodes=nodes or None,
            streams=chosen,
            ledger=ledger,
            store=store,
            security=kafka_security,
        )
        for topic, copied in sorted(report.copied.items()):
            click.echo(f"{topic}: {copied:,} record(s) copied", err=True)
        click.echo(
            f"republished {report.total:,} record(s); {report.skipped:,} not selected", err=True
        )
        return
    ledgers = sorted({ledger_topic(prefix_of(t)) for t in read_topics if "." in t}) if gaps else []
    audit = Audit(nodes or None)
    stats = ReadStats()

    def on_bridge_record(record: BridgeRecord) -> None:
        if record.record == HEARTBEAT:
            audit.add_heartbeat(record.value)

    events: Iterator[Event] = read_events(
        bootstrap_servers,
        [*read_topics, *ledgers],
        start=window.start_ns,
        end=window.end_ns,
        start_offset=window.start_offset,
        end_offset=window.end_offset,
        nodes=nodes or None,
        streams=chosen,
        ordered=not no_order and not merge,
        reorder_window=reorder_window,
        store=store,
        stats=stats,
        on_bridge_record=on_bridge_record,
        consumer_config=kafka_security,
    )
    with ExitStack() as stack:
        writer = _writer(fmt, output, store, chosen, stack)
        written = 0
        for event in merge_by_time(events) if merge else events:
            writer.write(event)
            written += 1
        writer.close()
    click.echo(
        f"replayed {written:,} event(s) from {stats.messages:,} record(s) read; "
        f"{stats.undecodable:,} undecodable, {stats.late:,} late for seq order",
        err=True,
    )
    for missing in stats.missing_topics:
        if missing in topics:  # asked for by name (a prefix's absent topics are normal)
            click.echo(f"warning: topic {missing} does not exist", err=True)
    if gaps:
        audit.traces = stats.traces
        verdicts = audit.judge(
            tolerance=tolerance,
            leading=window.from_start,
            trailing=window.to_end,
            only_recorded=True,
        )
        text = format_gaps(verdicts.streams)
        if text:
            click.echo(text, err=True)
