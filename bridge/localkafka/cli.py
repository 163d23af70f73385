"""The ``kafka`` command group: start, stop and inspect the local broker from a shell.

Each command is a separate process, so state is passed through the run directory's
broker.json (see ``bridge.localkafka.broker``), never held in memory.
"""

import logging
from pathlib import Path

import click

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.broker import DEFAULT_PORT, LocalBroker, default_run_dir
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_jars

_RUN_DIR_OPTION = click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "Directory that holds the broker's config, data, logs and state file. "
        "Defaults to <cache>/run/kafka, where <cache> is $TRACEBRIDGE_CACHE_DIR "
        "or ~/.cache/tracebridge."
    ),
)


def _configure_logging() -> None:
    # A no-op when the main CLI has configured logging already.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@click.group("kafka")
def kafka_group() -> None:
    """Run a local single-node Kafka broker (KRaft, no Docker) for development and tests."""
    _configure_logging()


@kafka_group.command()
@_RUN_DIR_OPTION
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Client port on 127.0.0.1; 0 picks a free one.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the broker to become ready (not counting the first jar fetch).",
)
def start(run_dir: Path | None, port: int, timeout: float) -> None:
    """Start the broker (or find it already running) and print its bootstrap servers.

    \b
    Examples:
      tracebridge kafka start
      tracebridge kafka start --port 0 --run-dir /tmp/kafka-dev
    """
    broker = LocalBroker(run_dir or default_run_dir(), port=port)
    try:
        broker.start(timeout=timeout)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(broker.bootstrap_servers)


@kafka_group.command()
@_RUN_DIR_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a graceful shutdown before the broker is killed.",
)
def stop(run_dir: Path | None, timeout: float) -> None:
    """Stop the broker started in the run directory, if it is running."""
    broker = LocalBroker.from_run_dir(run_dir or default_run_dir())
    try:
        stopped = broker.stop(timeout=timeout)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("stopped" if stopped else f"no broker running in {broker.run_dir}")


@kafka_group.command()
@_RUN_DIR_OPTION
def status(run_dir: Path | None) -> None:
    """Print whether the broker runs; exit status 1 when it does not, for use in scripts."""
    broker = LocalBroker.from_run_dir(run_dir or default_run_dir())
    current = broker.status()
    if not current.running:
        click.echo(f"not running ({broker.run_dir})")
        raise SystemExit(1)
    click.echo(f"running pid={current.pid} bootstrap={current.bootstrap_servers}")


@kafka_group.command("jars")
@click.option(
    "--kafka-version",
    default=DEFAULT_KAFKA_VERSION,
    show_default=True,
    help="Apache Kafka release whose broker jars to fetch from Maven Central.",
)
def jars_command(kafka_version: str) -> None:
    """Fetch the broker's jars into the cache (once) and print their directory."""
    try:
        path = ensure_jars(kafka_version)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(path)


def jars_main() -> None:
    """Entry point of ``python -m bridge.localkafka.jars`` (used by scripts/bootstrap)."""
    _configure_logging()
    jars_command(prog_name="python -m bridge.localkafka.jars")
