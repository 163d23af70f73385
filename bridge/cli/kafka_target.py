"""Which Kafka a command talks to: the one given, or the project's local broker."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.broker import DEFAULT_PORT, LocalBroker, default_run_dir
from bridge.localkafka.cluster import LocalCluster
from bridge.localkafka.ports import HOST, port_accepts


def local_broker(say: Callable[[str], None]) -> str:
    """The project's broker in its default run directory (started, or adopted if it
    already runs there); left running afterwards, since starting it costs seconds."""
    broker = LocalBroker(default_run_dir(), port=DEFAULT_PORT)
    if not broker.status().running:
        say(f"Starting a local Kafka broker in {broker.run_dir} (takes ~10 s) ...")
    try:
        broker.start()
    except LocalKafkaError as error:
        if port_accepts(DEFAULT_PORT, timeout=1.0):
            raise LocalKafkaError(
                f"{error}\nSomething else already listens on {HOST}:{DEFAULT_PORT}; if it is "
                f"a Kafka broker, use it with -b {HOST}:{DEFAULT_PORT}"
            ) from error
        raise
    say(
        f"Using the local Kafka broker at {broker.bootstrap_servers} "
        "(stop it with `tracebridge kafka stop`)."
    )
    return broker.bootstrap_servers


def kafka_target(bootstrap_servers: str | None) -> str:
    """``bootstrap_servers`` if given; otherwise start (or reuse) the local broker."""
    if bootstrap_servers:
        return bootstrap_servers
    return local_broker(lambda line: click.echo(line, err=True))


@contextmanager
def local_cluster(brokers: int) -> Iterator[str]:
    """A local cluster of ``brokers`` nodes on free ports for one command, stopped and
    removed afterwards (a benchmark's replicated Kafka; ``tracebridge kafka start
    --brokers N`` keeps one running instead)."""
    with tempfile.TemporaryDirectory(prefix="tb-cluster-") as run_dir:
        cluster = LocalCluster(Path(run_dir), brokers=brokers, port=0)
        click.echo(f"Starting a local Kafka cluster of {brokers} brokers ...", err=True)
        try:
            cluster.start()
            yield cluster.bootstrap_servers
        finally:
            cluster.stop()
