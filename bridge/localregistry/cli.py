"""The ``registry`` command group: start, stop and inspect the local schema registry.

Each command is a separate process, so state passes through the run directory's
registry.json (see ``bridge.localregistry.registry``), never through memory; the same
shape as ``tracebridge kafka``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from bridge.localkafka import LocalKafkaError
from bridge.localregistry.jars import DEFAULT_APICURIO_VERSION, ensure_app
from bridge.localregistry.java import ensure_registry_java
from bridge.localregistry.registry import DEFAULT_PORT, LocalRegistry, default_run_dir

_RUN_DIR_OPTION = click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "Directory that holds the registry's config, log and state file. Defaults to "
        "<cache>/run/registry, where <cache> is $TRACEBRIDGE_CACHE_DIR or ~/.cache/tracebridge."
    ),
)


def _configure_logging() -> None:
    # A no-op when the main CLI has configured logging already.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@click.group("registry")
def registry_group() -> None:
    """Run a local Apicurio schema registry (Confluent-compatible API, no Docker)."""
    _configure_logging()


@registry_group.command()
@_RUN_DIR_OPTION
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="HTTP port on 127.0.0.1; 0 picks a free one.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the registry to answer (not counting the first fetch).",
)
def start(run_dir: Path | None, port: int, timeout: float) -> None:
    """Start the registry (or find it already running) and print its URL.

    \b
    The URL is the Confluent-compatible API, e.g.
      http://127.0.0.1:18081/apis/ccompat/v7
    Examples:
      tracebridge registry start
      tracebridge registry start --port 0 --run-dir /tmp/registry-dev
    """
    registry = LocalRegistry(run_dir or default_run_dir(), port=port)
    try:
        registry.start(timeout=timeout)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(registry.url)


@registry_group.command()
@_RUN_DIR_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a graceful shutdown before the registry is killed.",
)
def stop(run_dir: Path | None, timeout: float) -> None:
    """Stop the registry started in the run directory, if it is running."""
    registry = LocalRegistry.from_run_dir(run_dir or default_run_dir())
    try:
        stopped = registry.stop(timeout=timeout)
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("stopped" if stopped else f"no registry running in {registry.run_dir}")


@registry_group.command()
@_RUN_DIR_OPTION
def status(run_dir: Path | None) -> None:
    """Print whether the registry runs; exit status 1 when it does not, for use in scripts."""
    registry = LocalRegistry.from_run_dir(run_dir or default_run_dir())
    current = registry.status()
    if not current.running:
        click.echo(f"not running ({registry.run_dir})")
        raise SystemExit(1)
    click.echo(f"running pid={current.pid} url={current.url}")


@registry_group.command("fetch")
@click.option(
    "--apicurio-version",
    default=DEFAULT_APICURIO_VERSION,
    show_default=True,
    help="Apicurio Registry release to fetch from Maven Central.",
)
def fetch_command(apicurio_version: str) -> None:
    """Fetch the registry app and a Java 21+ runtime into the cache (once); print the app dir."""
    try:
        app = ensure_app(apicurio_version)
        java = ensure_registry_java()
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.getLogger(__name__).info("Registry Java runtime: %s", java)
    click.echo(app)


def fetch_main() -> None:
    """Entry point of ``python -m bridge.localregistry.jars`` (used by scripts/bootstrap)."""
    _configure_logging()
    fetch_command(prog_name="python -m bridge.localregistry.jars")
