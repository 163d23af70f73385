"""``tracebridge bench``: measured throughput, loss and CPU cost, printed as a table."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import click

from bridge.bench.usdt import format_table, run_usdt_bench
from bridge.cli.kafka_target import kafka_target


@click.group("bench")
def bench_group() -> None:
    """Benchmarks (run on an otherwise idle machine; figures go in the README)."""


@bench_group.command("usdt")
@click.option(
    "--rates",
    default="20000,100000,200000,300000,400000,0",
    show_default=True,
    help="Offered events/s, comma-separated (each ping is 2 events; 0 = flat out).",
)
@click.option("--seconds", default=5.0, show_default=True, help="Duration of each rate.")
@click.option("--bootstrap-servers", "-b", help="Kafka to use (default: the local broker).")
@click.option("--no-baseline", is_flag=True, help="Skip the untraced runs.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Also write rows here.")
def bench_usdt(
    rates: str,
    seconds: float,
    bootstrap_servers: str | None,
    no_baseline: bool,
    json_file: Path | None,
) -> None:
    """Ping flood through USDT -> BPF -> bridge -> Kafka (acks=all) at rising rates.

    Prints offered and delivered events/s, loss, the bridge's CPU per delivered event,
    and the emulated node's CPU per probe hit traced vs untraced.
    """
    bootstrap = kafka_target(bootstrap_servers)
    prefix = f"bench{int(time.time())}"
    results = run_usdt_bench(
        bootstrap, [float(r) for r in rates.split(",")], seconds, prefix, not no_baseline
    )
    click.echo(format_table(results))
    if not all(r.balanced() for r in results):
        click.echo("WARNING: some runs do not balance (delivered + lost != fired)", err=True)
    if json_file is not None:
        json_file.write_text(json.dumps([asdict(r) for r in results], indent=2))
