"""``tracebridge bench``: measured throughput, loss and CPU cost, printed as a table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from bridge.bench.audit import format_audit_bench, run_audit_bench
from bridge.bench.fleet import FleetSpec
from bridge.bench.fleet_bench import delete_topics, format_fleet, run_fleet_bench
from bridge.bench.ipc import IpcRunner
from bridge.bench.ping import NodeRunner, StageResult, format_table, run_rates
from bridge.bench.realping import CONDITIONS, format_ping_table, run_realping
from bridge.bench.reindex import format_reindex_table, run_reindex
from bridge.bench.reindex_chain import ChainSpec, ensure_chain
from bridge.bench.replay import format_result, run_replay_bench
from bridge.bench.usdt import UsdtRunner
from bridge.cli.kafka_target import kafka_target, local_cluster
from bridge.realnode.binaries import ensure_binaries


@click.group("bench")
def bench_group() -> None:
    """Benchmarks (run on an otherwise idle machine; figures go in the README)."""


RATES_HELP = "Offered events/s, comma-separated (each ping is 2 events; 0 = flat out)."
# Options several benchmarks take (click builds a new Option at each use).
BOOTSTRAP_OPTION = click.option("--bootstrap-servers", "-b", help="Kafka (default: the local one).")
JSON_OPTION = click.option(
    "--json", "json_file", type=click.Path(path_type=Path), help="Figures as JSON."
)


Command = TypeVar("Command", bound=Callable[..., None])
HEADER_VARIANTS = {"on": (True,), "off": (False,), "both": (True, False)}


def _ping_options(default_rates: str) -> Callable[[Command], Command]:
    """The options every ping-flood command takes."""

    def wrap(function: Command) -> Command:
        for option in reversed(
            [
                click.option("--rates", default=default_rates, show_default=True, help=RATES_HELP),
                click.option("--seconds", default=5.0, show_default=True, help="Per rate."),
                BOOTSTRAP_OPTION,
                click.option("--no-baseline", is_flag=True, help="Skip the untraced runs."),
                click.option(
                    "--headers",
                    type=click.Choice(sorted(HEADER_VARIANTS)),
                    default="on",
                    show_default=True,
                    help="kafka.event_headers of the bridge; 'both': every rate with and "
                    "without, in turns, side by side (what headers cost).",
                ),
                click.option(
                    "--metrics",
                    is_flag=True,
                    help="Run every rate twice, without and with the Prometheus endpoint "
                    "(metrics.port, scraped every second), in turns, and print the rows side "
                    "by side: what metrics cost.",
                ),
                JSON_OPTION,
            ]
        ):
            function = option(function)
        return function

    return wrap


def _ping(
    runners: list[NodeRunner], rates: str, seconds: float, bootstrap_servers: str | None,
    no_baseline: bool, headers: str, metrics: bool, json_file: Path | None,
) -> None:  # fmt: skip
    bootstrap = kafka_target(bootstrap_servers)
    offered = [float(r) for r in rates.split(",")]
    # (event headers, metrics) per row of a rate; the first is the baseline's bridge.
    variants = [
        (h, m) for h in HEADER_VARIANTS[headers] for m in ((False, True) if metrics else (False,))
    ]
    results: list[StageResult] = []
    for runner in runners:
        prefix = f"bench-{runner.source}-{int(time.time())}"
        if len(variants) == 1:
            ((with_headers, _),) = variants
            results += run_rates(
                runner, bootstrap, offered, seconds, prefix, not no_baseline, headers=with_headers
            )
            continue
        # Rate by rate, a fresh bridge per configuration, in turns (which one goes first
        # rotates): load that drifts during the benchmark weighs on every row of a rate
        # alike. The node's untraced cost does not depend on the bridge: measured once.
        for i, rate in enumerate(offered):
            turn = i % len(variants)
            rows: dict[tuple[bool, bool], list[StageResult]] = {}
            for variant in variants[turn:] + variants[:turn]:
                with_headers, on = variant
                topics = (
                    prefix + ("" if with_headers else "-noheaders") + ("-metrics" if on else "")
                )
                baseline = variant == variants[0] and not no_baseline
                rows[variant] = run_rates(
                    runner, bootstrap, [rate], seconds, topics, baseline,
                    metrics=on, headers=with_headers,
                )  # fmt: skip
            results += [row for variant in variants for row in rows[variant]]
    click.echo(format_table(results))
    if not all(r.balanced() for r in results):
        click.echo("WARNING: some runs do not balance (delivered + lost != fired)", err=True)
    if not all(r.metrics_agree() for r in results):
        click.echo("WARNING: /metrics and the ledger disagree on what was delivered", err=True)
    if json_file is not None:
        json_file.write_text(json.dumps([asdict(r) for r in results], indent=2))


@bench_group.command("usdt")
@_ping_options("20000,100000,200000,300000,400000,0")
def bench_usdt(**options: Any) -> None:
    """Ping flood through USDT -> BPF -> bridge -> Kafka (acks=all) at rising rates.

    Prints offered and delivered events/s, loss by stage, the bridge's CPU per delivered
    event (and where it goes), and the emulated node's CPU per probe hit, traced and not.
    With --metrics, each rate also with the Prometheus endpoint on ("usdt +metrics").
    """
    _ping([UsdtRunner()], **options)


@bench_group.command("ipc")
@_ping_options("20000,100000,200000,0")
def bench_ipc(**options: Any) -> None:
    """Ping flood through IPC (batched NetMessageTrace) -> bridge -> Kafka (acks=all)."""
    _ping([IpcRunner()], **options)


@bench_group.command("compare")
@_ping_options("20000,100000,200000,0")
def bench_compare(**options: Any) -> None:
    """RFC #35142's question: the same ping flood through USDT and through IPC, side by
    side: delivered events/s, loss, the bridge's CPU per event (receiving vs producing vs
    librdkafka) and the node's CPU per event."""
    _ping([UsdtRunner(), IpcRunner()], **options)


@bench_group.command("replay")
@click.option("--records", default=1_000_000, show_default=True, help="Records to produce.")
@click.option("--nodes", default=2, show_default=True, help="Nodes (sessions) they come from.")
@click.option("--bootstrap-servers", "-b", help="Kafka to use (default: the local broker).")
@click.option("--no-baseline", is_flag=True, help="Skip the fastavro-only replay.")
@click.option("--no-jsonl", is_flag=True, help="Skip the replay to JSON lines.")
@click.option("--keep", is_flag=True, help="Keep the benchmark's topics afterwards.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Also write figures.")
def bench_replay(
    records: int,
    nodes: int,
    bootstrap_servers: str | None,
    no_baseline: bool,
    no_jsonl: bool,
    keep: bool,
    json_file: Path | None,
) -> None:
    """Produce RECORDS realistic records (envelope + event, several streams and topics,
    a SESSION_END ledger per node), then replay them (decode throughput, records/s, in
    this one process) and audit them (seconds), and print the figures.
    """
    bootstrap = kafka_target(bootstrap_servers)
    result = run_replay_bench(
        bootstrap, records, nodes=nodes, baseline=not no_baseline, jsonl=not no_jsonl, keep=keep
    )
    click.echo(format_result(result))
    if not result.audit_ok:
        click.echo("WARNING: the audit of the benchmark's own records failed", err=True)
    if json_file is not None:
        json_file.write_text(json.dumps(asdict(result), indent=2))


@bench_group.command("audit")
@click.option("--records", default=10_000_000, show_default=True, help="Records to produce.")
@click.option("--nodes", default=8, show_default=True, help="Nodes (sessions) they come from.")
@click.option("--partitions", default=4, show_default=True, help="Partitions of each topic.")
@click.option(
    "--workers",
    default="1,2",
    show_default=True,
    help="Worker counts to time, comma-separated (1 = the single-process audit).",
)
@click.option("--repeat", default=1, show_default=True, help="Rounds over the worker counts.")
@click.option(
    "--prefix",
    help="Audit these topics, already written (by --keep), instead of producing new ones.",
)
@click.option("--keep", is_flag=True, help="Keep the benchmark's topics afterwards.")
@BOOTSTRAP_OPTION
@JSON_OPTION
def bench_audit(
    records: int, nodes: int, partitions: int, workers: str, repeat: int, prefix: str | None,
    keep: bool, bootstrap_servers: str | None, json_file: Path | None,
) -> None:  # fmt: skip
    """Produce RECORDS records of NODES nodes through the bridge's own encoder and
    producer (a busy node's mix, kernel losses reported in lost_before, a SESSION_END
    ledger per node) into topics of PARTITIONS partitions, then time `tracebridge
    audit --require-closed` with each worker count: records/s, and whether every
    verdict passes and equals the first.
    """
    counts = [int(w) for w in workers.split(",") if w.strip()]
    if not counts or min(counts) < 1:
        raise click.BadParameter("worker counts are integers >= 1", param_hint="--workers")
    bootstrap = kafka_target(bootstrap_servers)
    result = run_audit_bench(
        bootstrap, records, nodes=nodes, partitions=partitions, workers=counts, repeat=repeat,
        prefix=prefix, say=lambda line: click.echo(line, err=True),
    )  # fmt: skip
    if not keep and prefix is None:
        delete_topics(bootstrap, result.prefix)
    elif prefix is None:
        click.echo(f"topics kept: {result.prefix}.* (--prefix {result.prefix})", err=True)
    click.echo(format_audit_bench(result))
    if json_file is not None:
        json_file.write_text(json.dumps(asdict(result), indent=2))
    if not result.ok:
        raise SystemExit(1)


@bench_group.command("fleet")
@click.option("--usdt-nodes", default=4, show_default=True, help="Emulated USDT nodes.")
@click.option("--ipc-nodes", default=4, show_default=True, help="Emulated IPC nodes.")
@click.option("--events", default=20_000, show_default=True, help="Events each node fires.")
@click.option("--seconds", default=10.0, show_default=True, help="How long the nodes fire.")
@click.option("--partitions", default=4, show_default=True, help="Partitions of the topics.")
@click.option("--workers", default=2, show_default=True, help="Processes of the shared audit.")
@click.option(
    "--brokers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Without -b: 1 uses the local broker; more start a local cluster for the run.",
)
@click.option("--keep", is_flag=True, help="Keep the fleet's topics afterwards.")
@BOOTSTRAP_OPTION
@JSON_OPTION
def bench_fleet(
    usdt_nodes: int, ipc_nodes: int, events: int, seconds: float, partitions: int, workers: int,
    brokers: int, keep: bool, bootstrap_servers: str | None, json_file: Path | None,
) -> None:  # fmt: skip
    """A fleet into one Kafka: emulated USDT and IPC nodes, each with its own
    `tracebridge run` process and node_id, firing at once; then the topics alone are
    judged: audit --require-closed (1 process, then --workers, same verdict), each
    node's books against the node's own count, and `replay --merge` across nodes
    (complete, in event-time order). Needs root (BPF) for the USDT nodes.
    """
    spec = FleetSpec(usdt_nodes, ipc_nodes, events, seconds, partitions)
    with ExitStack() as stack:
        if brokers > 1 and not bootstrap_servers:
            bootstrap = stack.enter_context(local_cluster(brokers))
        else:
            bootstrap = kafka_target(bootstrap_servers)
        result = run_fleet_bench(
            bootstrap, spec, workers=workers, keep=keep, say=lambda line: click.echo(line, err=True)
        )
    click.echo(format_fleet(result))
    if json_file is not None:
        figures = {
            "ok": result.ok,
            "records": result.records,
            "audit_s": result.audit_s,
            "audit_shared_s": result.audit_shared_s,
            "workers": workers,
            "same_verdict": result.same_verdict,
            "nodes": [asdict(v) for v in result.verdicts],
        }
        json_file.write_text(json.dumps(figures, indent=2))
    if not result.ok:
        raise SystemExit(1)


@bench_group.command("realping")
@click.option(
    "--rates",
    default="1000,10000,50000,0",
    show_default=True,
    help="Offered pings/s, comma-separated (each ping is 2 events; 0 = flat out).",
)
@click.option("--seconds", default=5.0, show_default=True, help="Flood length per rate.")
@click.option(
    "--conditions",
    default=",".join(CONDITIONS),
    show_default=True,
    help="none (no tracer), bridge (tracebridge run into Kafka), perfbuf (the "
    "contrib/tracing-style BCC perf-buffer consumer); comma-separated, run in this order.",
)
@click.option(
    "--window",
    default=1000,
    show_default=True,
    help="Most pings unanswered at once (flat out, RTT is about window / rate).",
)
@BOOTSTRAP_OPTION
@JSON_OPTION
def bench_realping(
    rates: str, seconds: float, conditions: str, window: int,
    bootstrap_servers: str | None, json_file: Path | None,
) -> None:  # fmt: skip
    """RFC #35142's ping benchmark on a real bitcoind (regtest, loopback).

    A P2P peer floods the node with pings at each rate, untraced, traced by the bridge
    (-t 'net:*_message' into Kafka, acks=all) and traced by a contrib/tracing-style BCC
    perf-buffer consumer. Prints pings/s answered, round-trip p50/p99, the node's CPU
    per ping, the consumer's CPU per event, and events expected / fired / delivered /
    lost by stage. Needs root (BPF).
    """
    chosen = [c.strip() for c in conditions.split(",") if c.strip()]
    unknown = set(chosen) - set(CONDITIONS)
    if unknown:
        raise click.BadParameter(f"unknown {sorted(unknown)}", param_hint="--conditions")
    bootstrap = kafka_target(bootstrap_servers) if "bridge" in chosen else None
    rows = run_realping(
        ensure_binaries(), [float(r) for r in rates.split(",")], seconds, chosen, bootstrap,
        window,
    )  # fmt: skip
    click.echo(format_ping_table(rows))
    if not all(r.balanced() for r in rows):
        click.echo(
            "WARNING: some runs do not balance (delivered + lost != fired, or fired != "
            "the messages the peer exchanged)",
            err=True,
        )
    if json_file is not None:
        json_file.write_text(json.dumps([asdict(r) for r in rows], indent=2))


@bench_group.command("reindex")
@click.option("--blocks", default=ChainSpec.blocks, show_default=True, help="Blocks of txs.")
@click.option("--txs", default=ChainSpec.txs, show_default=True, help="Transactions per block.")
@click.option(
    "--repeat", default=3, show_default=True, help="Pairs of runs (untraced, then traced)."
)
@click.option("--dbcache", default=450, show_default=True, help="The node's -dbcache (MiB).")
@click.option(
    "--utxocache-ring-kib",
    type=int,
    help="The bridge's utxocache ring buffer (KiB, a power of two; default: its config's).",
)
@BOOTSTRAP_OPTION
@JSON_OPTION
def bench_reindex(
    blocks: int, txs: int, repeat: int, dbcache: int,
    utxocache_ring_kib: int | None, bootstrap_servers: str | None, json_file: Path | None,
) -> None:  # fmt: skip
    """bitcoind -reindex-chainstate of a cached regtest chain, untraced and with the
    bridge attached to every utxocache and validation tracepoint (into Kafka).

    The chain (BLOCKS blocks of TXS transactions, each spending 2 random coins to 3
    outputs) is built on first use and cached. The node is held before its first block until the
    bridge is attached. Prints wall time (the node's own log clock), added wall time,
    events/s delivered, events per block and loss by stage. Needs root (BPF).
    """
    binaries = ensure_binaries()
    bootstrap = kafka_target(bootstrap_servers)
    chain = ensure_chain(binaries, ChainSpec(blocks, txs), say=click.echo)
    env = {}
    if utxocache_ring_kib is not None:
        env["TRACEBRIDGE_USDT__RING_BUFFER_KIB"] = json.dumps({"utxocache": utxocache_ring_kib})
    runs = run_reindex(
        binaries, chain, bootstrap, repeat=repeat, dbcache_mib=dbcache, bridge_env=env,
        say=lambda line: click.echo(line, err=True),
    )  # fmt: skip
    click.echo(format_reindex_table(chain, runs))
    if any(r.fired is not None and r.delivered is not None and
           r.delivered + sum(r.lost.values()) != r.fired for r in runs):  # fmt: skip
        click.echo("WARNING: some runs do not balance (delivered + lost != fired)", err=True)
    if json_file is not None:
        json_file.write_text(
            json.dumps({"chain": asdict(chain), "runs": [asdict(r) for r in runs]}, default=str)
        )
