"""Which Kafka a command talks to: the one given, or the project's local broker."""

from __future__ import annotations

import click

from bridge.localkafka.broker import DEFAULT_PORT, LocalBroker, default_run_dir


def kafka_target(bootstrap_servers: str | None) -> str:
    """``bootstrap_servers`` if given; otherwise start (or reuse) the local broker."""
    if bootstrap_servers:
        return bootstrap_servers
    broker = LocalBroker(default_run_dir(), port=DEFAULT_PORT)
    broker.start()
    click.echo(
        f"Using the local Kafka broker at {broker.bootstrap_servers} "
        "(stop it with `tracebridge kafka stop`).",
        err=True,
    )
    return broker.bootstrap_servers
