"""Entry point for the ``tracebridge`` console script.

Each command lives in its own module; this one only assembles the group and turns the
bridge's own errors into one clear line and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from bridge import __version__
from bridge.cli.audit import audit_command
from bridge.cli.bench import bench_group
from bridge.cli.demo import demo_command
from bridge.cli.export import export_group
from bridge.cli.gen import gen_command
from bridge.cli.replay import replay_command
from bridge.cli.run import run_command
from bridge.cli.schema_compat import schemas_group
from bridge.cli.tail import tail_command
from bridge.errors import BridgeError, ConfigError
from bridge.localkafka.cli import kafka_group
from bridge.localregistry.cli import registry_group


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            click.echo(f"tracebridge: {error}", err=True)
            sys.exit(2)
        except BridgeError as error:
            click.echo(f"tracebridge: error: {error}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="tracebridge")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log to stderr.",
)
def main(log_level: str) -> None:
    """Stream Bitcoin Core's tracepoints into Kafka, with nothing lost silently."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


main.add_command(run_command)
main.add_command(demo_command)
main.add_command(tail_command)
main.add_command(schemas_group)
main.add_command(gen_command)
main.add_command(kafka_group)
main.add_command(registry_group)
main.add_command(bench_group)
main.add_command(replay_command)
main.add_command(audit_command)
main.add_command(export_group)
