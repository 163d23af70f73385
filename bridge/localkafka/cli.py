"""The ``kafka`` command group: start, stop and inspect the local broker from a shell.

Each command is a separate process, so state is passed through the run directory's
broker.json (see ``bridge.localkafka.broker``), never held in memory. The commands are
those of every local service (``bridge.localservice.cli``), with one thing of Kafka's own:
``start --brokers N`` runs a cluster of N nodes (``bridge.localkafka.cluster``) in the run
directory, and ``stop`` and ``status`` act on whichever the run directory holds.
"""

from pathlib import Path
from typing import Any

import click

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.broker import DEFAULT_PORT, LocalBroker
from bridge.localkafka.cluster import PORT_STRIDE, LocalCluster
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_jars
from bridge.localservice.cli import (
    FetchCommand,
    ServiceCommands,
    run_fetch_command,
    service_group,
)

kafka_group = service_group(
    ServiceCommands(
        help=(
            "Run a local Kafka broker (KRaft, no Docker) for development and tests: one "
            "node, or a replicated cluster of several (start --brokers 3)."
        ),
        service=LocalBroker,
        default_port=DEFAULT_PORT,
        address_name="bootstrap servers",
        status_key="bootstrap",
        fetch=FetchCommand(
            name="jars",
            help="Fetch the broker's jars into the cache (once) and print their directory.",
            version_option="kafka-version",
            version_help="Apache Kafka release whose broker jars to fetch from Maven Central.",
            default_version=DEFAULT_KAFKA_VERSION,
            fetch=ensure_jars,
        ),
        error=LocalKafkaError,
    )
)


def _chosen(run_dir: Path | None) -> Path:
    return run_dir or LocalBroker.default_run_dir()


def _add_clusters(group: click.Group) -> None:
    """Teach the generic commands about clusters, leaving the single broker's untouched.

    ``--brokers 1`` (the default) runs exactly the single-broker command; the other
    commands defer to it unless the run directory holds a cluster's layout.
    """
    start, stop, status = (group.commands[name] for name in ("start", "stop", "status"))
    single_start, single_stop, single_status = start.callback, stop.callback, status.callback
    assert single_start is not None
    assert single_stop is not None
    assert single_status is not None

    start.params.append(
        click.Option(
            ["--brokers"],
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help=(
                "Nodes to run, each a broker and a KRaft controller in its own JVM and "
                "directory (<run-dir>/broker-<i>). With 3 or more, internal topics get 3 "
                "replicas and min.insync.replicas=2. Node i listens on --port + "
                f"(i-1) x {PORT_STRIDE} (controller: one above); prints every node's address."
            ),
        )
    )

    def start_either(run_dir: Path | None, port: int, timeout: float, brokers: int) -> None:
        if brokers == 1:
            if LocalCluster.holds_cluster(_chosen(run_dir)):
                raise click.ClickException(
                    f"{_chosen(run_dir)} holds a cluster; pass its --brokers, or stop it "
                    "and choose another --run-dir for a single broker."
                )
            single_start(run_dir=run_dir, port=port, timeout=timeout)
            return
        cluster = LocalCluster(_chosen(run_dir), brokers=brokers, port=port)
        try:
            cluster.start(timeout=timeout)
        except LocalKafkaError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(cluster.bootstrap_servers)

    def stop_either(run_dir: Path | None, timeout: float) -> None:
        cluster = LocalCluster.from_run_dir(_chosen(run_dir))
        if cluster is None:
            single_stop(run_dir=run_dir, timeout=timeout)
            return
        try:
            stopped = cluster.stop(timeout=timeout)
        except LocalKafkaError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo("stopped" if stopped else f"no Kafka cluster running in {cluster.run_dir}")

    def status_either(run_dir: Path | None) -> None:
        cluster = LocalCluster.from_run_dir(_chosen(run_dir))
        if cluster is None:
            single_status(run_dir=run_dir)
            return
        current = cluster.status()
        for node_id, node in enumerate(current.nodes, start=1):
            if node.running:
                click.echo(f"node {node_id} running pid={node.pid} bootstrap={node.address}")
            else:
                click.echo(f"node {node_id} not running")
        if current.running < len(current.nodes):
            raise SystemExit(1)

    callbacks: dict[click.Command, Any] = {
        start: start_either,
        stop: stop_either,
        status: status_either,
    }
    for command, callback in callbacks.items():
        command.callback = callback
    start.help = (start.help or "") + (
        "\n\n\b\nA cluster of three:\n  tracebridge kafka start --brokers 3 "
        "--run-dir /tmp/kafka-cluster"
    )
    status.help = (status.help or "") + " For a cluster: every node, and 1 unless all run."


_add_clusters(kafka_group)


def jars_main() -> None:
    """Entry point of ``python -m bridge.localkafka.jars`` (used by scripts/bootstrap)."""
    run_fetch_command(kafka_group, "jars", prog_name="python -m bridge.localkafka.jars")
