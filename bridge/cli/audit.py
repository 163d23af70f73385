"""``tracebridge audit``: prove completeness from the event topics and the ledger."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from bridge.cli.replay_options import connection_options, store_for
from bridge.replay.audit import read_audit
from bridge.replay.audit_workers import read_audit_shared
from bridge.replay.gaps import DEFAULT_TOLERANCE
from bridge.replay.report import format_audit


@click.command("audit")
@connection_options
@click.option("--prefix", default="tracebridge", show_default=True, help="Topic prefix to audit.")
@click.option("--node", "nodes", multiple=True, help="Audit only this node; repeatable.")
@click.option(
    "--tolerance",
    type=click.IntRange(min=0),
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="How many records away a lost_before may cover a gap (concurrent CPUs).",
)
@click.option(
    "--require-closed", is_flag=True, help="Fail streams with no SESSION_END ledger (open)."
)
@click.option("--sessions", is_flag=True, help="Also list every session that passed.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes that share the partitions (reading is the cost); same verdict.",
)
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Write the full report.")
def audit_command(
    bootstrap_servers: str,
    registry_url: str | None,
    kafka_security: dict[str, str],
    prefix: str,
    nodes: tuple[str, ...],
    tolerance: int,
    require_closed: bool,
    sessions: bool,
    workers: int,
    json_file: Path | None,
) -> None:
    """Prove from the topics alone that every event was delivered or counted lost.

    Reads every event topic of --prefix (envelopes only) and the <prefix>.bridge
    heartbeats, and for every (node, session, stream) with a SESSION_END ledger
    (closed) checks that:

    \b
    1. no seq appears twice;
    2. no seq is above the ledger's fired;
    3. every missing seq in 1..fired is accounted for, oldest gap first, by
       the lost_before of the record right after it, or of a record at most
       --tolerance records away (kernel losses of two CPUs firing at once can
       land on a neighbour), or by the ledger's producer losses (never in a
       lost_before), or, after the last record, by the ledger's losses that
       no lost_before reported; so delivered + lost == fired holds;
    4. lost_before never reports more than the ledger's kernel+bridge+node
       losses, and the ledger never claims more losses than seqs are missing
       (except producer timeouts that Kafka wrote after all: a warning).

    Streams with no SESSION_END yet (the bridge still runs) are 'open': their
    missing seqs are warnings unless --require-closed. Duplicates always fail.
    Prints one row per node and stream (sessions summed), then each problem;
    exits 1 if any stream fails, 0 otherwise.

    With --workers N, N processes each read a share of the partitions into books
    of their own, which are merged before judging: the verdict is the same as
    one process's, in less time when there are cores to spare.
    """
    began = time.perf_counter()
    if workers > 1:
        audit = read_audit_shared(
            bootstrap_servers, prefix, workers=workers, nodes=nodes or None,
            registry_url=registry_url, consumer_config=kafka_security,
        )  # fmt: skip
    else:
        audit = read_audit(
            bootstrap_servers, prefix, nodes=nodes or None, store=store_for(registry_url),
            consumer_config=kafka_security,
        )  # fmt: skip
    report = audit.judge(tolerance=tolerance, require_closed=require_closed)
    elapsed = time.perf_counter() - began
    click.echo(format_audit(report, color=sys.stdout.isatty(), sessions=sessions))
    records = sum(s.gaps.records for s in report.streams)
    by = f" by {workers} workers" if workers > 1 else ""
    click.echo(f"{records:,} record(s) audited in {elapsed:.2f} s{by}", err=True)
    if json_file is not None:
        json_file.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if not report.ok:
        sys.exit(1)
