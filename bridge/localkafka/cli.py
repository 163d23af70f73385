"""The ``kafka`` command group: start, stop and inspect the local broker from a shell.

Each command is a separate process, so state is passed through the run directory's
broker.json (see ``bridge.localkafka.broker``), never held in memory. The commands are
those of every local service (``bridge.localservice.cli``).
"""

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.broker import DEFAULT_PORT, LocalBroker
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_jars
from bridge.localservice.cli import (
    FetchCommand,
    ServiceCommands,
    run_fetch_command,
    service_group,
)

kafka_group = service_group(
    ServiceCommands(
        help="Run a local single-node Kafka broker (KRaft, no Docker) for development and tests.",
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


def jars_main() -> None:
    """Entry point of ``python -m bridge.localkafka.jars`` (used by scripts/bootstrap)."""
    run_fetch_command(kafka_group, "jars", prog_name="python -m bridge.localkafka.jars")
