"""Build the click group that starts, stops and inspects one local service from a shell.

Each command is a separate process, so state passes through the run directory's state
file (see ``bridge.localservice.service``), never through memory. Every service gets the
same commands: ``start``, ``stop``, ``status`` and one that fetches its artifacts into the
cache (``python -m bridge.<service>.jars`` runs that one alone, for scripts/bootstrap).
"""

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from bridge.localservice.service import LocalService

_F = TypeVar("_F", bound=Callable[..., Any])


class ServiceClass(Protocol):
    """What the commands need of a ``LocalService`` subclass (the class itself)."""

    label: str
    run_dir_name: str

    def __call__(self, run_dir: Path, port: int = ...) -> LocalService[Any, Any]: ...

    def from_run_dir(self, run_dir: Path) -> LocalService[Any, Any]: ...

    def default_run_dir(self) -> Path: ...


@dataclass(frozen=True)
class FetchCommand:
    """The command that fetches a service's artifacts (of one version) into the cache."""

    name: str
    help: str
    version_option: str
    """The option's name, without dashes: "kafka-version"."""
    version_help: str
    default_version: str
    fetch: Callable[[str], Path]
    """Fetches the version (once) and returns the directory to print."""


@dataclass(frozen=True)
class ServiceCommands:
    """What differs between two services' command groups, besides the service's names.

    The group is named after the service's ``run_dir_name``.
    """

    help: str
    service: ServiceClass
    default_port: int
    address_name: str
    """What ``start`` prints: "bootstrap servers"."""
    status_key: str
    """What ``status`` calls it: "bootstrap"."""
    fetch: FetchCommand
    error: type[Exception]
    """Turned into a one-line ``ClickException`` by every command."""
    start_note: str = ""
    """A paragraph for ``start --help`` about what it prints."""


def configure_logging() -> None:
    """Log INFO lines to stderr; a no-op when the main CLI has configured logging already."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def service_group(spec: ServiceCommands) -> click.Group:
    """Return the ``start``/``stop``/``status``/fetch group that ``spec`` describes."""
    label = spec.service.label
    name = spec.service.run_dir_name
    run_dir_option = click.option(
        "--run-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=(
            f"Directory that holds the {label}'s config, logs and state file. Defaults to "
            f"<cache>/run/{name}, where <cache> is $TRACEBRIDGE_CACHE_DIR or "
            "~/.cache/tracebridge."
        ),
    )

    def chosen(run_dir: Path | None) -> Path:
        return run_dir or spec.service.default_run_dir()

    @click.group(name, help=spec.help)
    def group() -> None:
        configure_logging()

    @group.command(
        help=(
            f"Start the {label} (or find it already running) and print its {spec.address_name}."
            f"\n\n\b\n{spec.start_note}Examples:\n  tracebridge {name} start\n"
            f"  tracebridge {name} start --port 0 --run-dir /tmp/{name}-dev"
        )
    )
    @run_dir_option
    @click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=spec.default_port,
        show_default=True,
        help="Port on 127.0.0.1 for clients; 0 picks a free one.",
    )
    @_timeout_option(
        120.0,
        1.0,
        f"Seconds to wait for the {label} to become ready (not counting the first fetch).",
    )
    def start(run_dir: Path | None, port: int, timeout: float) -> None:
        service = spec.service(chosen(run_dir), port=port)
        with _one_line_errors(spec.error):
            service.start(timeout=timeout)
        click.echo(service.address)

    @group.command(help=f"Stop the {label} started in the run directory, if it is running.")
    @run_dir_option
    @_timeout_option(
        30.0, 0.0, f"Seconds to wait for a graceful shutdown before the {label} is killed."
    )
    def stop(run_dir: Path | None, timeout: float) -> None:
        service = spec.service.from_run_dir(chosen(run_dir))
        with _one_line_errors(spec.error):
            stopped = service.stop(timeout=timeout)
        click.echo("stopped" if stopped else f"no {label} running in {service.run_dir}")

    @group.command(
        help=f"Print whether the {label} runs; exit status 1 when it does not, for scripts."
    )
    @run_dir_option
    def status(run_dir: Path | None) -> None:
        service = spec.service.from_run_dir(chosen(run_dir))
        current = service.status()
        if not current.running:
            click.echo(f"not running ({service.run_dir})")
            raise SystemExit(1)
        click.echo(f"running pid={current.pid} {spec.status_key}={current.address}")

    fetch = spec.fetch

    @group.command(fetch.name, help=fetch.help)
    @click.option(
        f"--{fetch.version_option}",
        "version",
        default=fetch.default_version,
        show_default=True,
        help=fetch.version_help,
    )
    def fetch_command(version: str) -> None:
        with _one_line_errors(spec.error):
            path = fetch.fetch(version)
        click.echo(path)

    return group


def _timeout_option(default: float, minimum: float, text: str) -> Callable[[_F], _F]:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=minimum),
        default=default,
        show_default=True,
        help=text,
    )


@contextlib.contextmanager
def _one_line_errors(error: type[Exception]) -> Iterator[None]:
    """Report ``error`` as click does its own: ``Error: <message>``, exit status 1."""
    try:
        yield
    except error as exc:
        raise click.ClickException(str(exc)) from exc


def run_fetch_command(group: click.Group, name: str, prog_name: str) -> None:
    """Run the group's fetch command on its own, as ``python -m bridge.<service>.jars``."""
    configure_logging()
    group.commands[name](prog_name=prog_name)
