"""Run one single-node Apache Kafka broker (KRaft, broker and controller in one JVM).

Why a hand-rolled launcher: the project's machines have Java and Maven Central but no Docker
and no Apache downloads, so testcontainers and the tarball scripts are out. The broker runs
from the jars ``bridge.localkafka.jars`` caches, with the config of
shared/reference/kafka-local.md (sections 1.5-1.10).

A broker is owned through its run directory (layout in ``bridge.localkafka.rundir``), with
the lifecycle every local service shares (``bridge.localservice.service``): its
``broker.json`` lets another process (``tracebridge kafka stop``) find the broker, and
nothing is signalled unless its ``/proc/<pid>/cmdline`` names this run directory's
server.properties. What is Kafka's own is here: the ports, the jars, the config and
storage formatting before a start, and readiness as a metadata request.
"""

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_jars
from bridge.localkafka.jvm import (
    DEFAULT_JVM_OPTIONS,
    broker_command,
    find_java,
    format_storage_once,
    kafka_uuid,
)
from bridge.localkafka.properties import check_extra_properties, write_server_properties
from bridge.localkafka.readiness import metadata_attempts
from bridge.localkafka.rundir import RUN_DIR_NAME, SERVER_PROPERTIES, RunDir
from bridge.localkafka.state import STATE_FILE, BrokerState
from bridge.localservice.service import LocalService, ServiceStatus

# Not 9092, so a Kafka the developer already runs is left alone; the reference's multi-node
# layout (kafka-local.md 1.11) uses the same i9092 pattern.
DEFAULT_PORT = 19092


@dataclass(frozen=True)
class BrokerStatus(ServiceStatus):
    """What ``LocalBroker.status()`` found; ``pid`` and servers are None when not running."""

    @property
    def bootstrap_servers(self) -> str | None:
        """``127.0.0.1:<port>`` of the running broker."""
        return self.address


class LocalBroker(LocalService[BrokerState, BrokerStatus]):
    """One single-node KRaft broker on 127.0.0.1, owned through its run directory.

    ``start()`` and ``stop()`` are idempotent so that tests, the CLI and scripts can call
    them without first asking whether someone else already did.
    """

    label = "Kafka broker"
    error = LocalKafkaError
    run_dir_name = RUN_DIR_NAME
    # Its path is the broker command's last argument.
    config_file_name = SERVER_PROPERTIES
    state_file_name = STATE_FILE
    log_file_name = "broker.out"
    port_roles = ("client", "controller")
    address_template = "{host}:{port}"
    description_template = "Kafka {version} broker"
    state_type = BrokerState
    status_type = BrokerStatus

    def __init__(
        self,
        run_dir: Path,
        port: int = DEFAULT_PORT,
        controller_port: int = 0,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        """Describe a broker; nothing happens until ``start()``.

        ``port`` and ``controller_port`` of 0 mean "pick a free port at start", which lets
        parallel test sessions run side by side. ``extra_properties`` are merged over the
        defaults (except the keys that listeners, paths and roles depend on).
        """
        check_extra_properties(extra_properties or {})
        super().__init__(run_dir, (port, controller_port), kafka_version, jvm_options)
        self._dir = RunDir(self.run_dir)
        self._extra_properties = dict(extra_properties or {})

    @classmethod
    def _from_state(cls, run_dir: Path, state: BrokerState | None) -> Self:
        if state is None:
            return cls(run_dir)
        return cls(run_dir, state.port, state.controller_port, state.kafka_version)

    # ``127.0.0.1:<port>``; with port 0 it is known only once ``start()`` picked one.
    bootstrap_servers = LocalService.address

    def _provision(self, ports: tuple[int, ...]) -> list[str]:
        """Fetch the jars, write the config and format storage (once, so topics persist).

        Each step can fail for a reason worth naming (no ``java``, a Maven or StorageTool
        error); doing them before the broker JVM turns each into a specific error.
        """
        port, controller_port = ports
        libs = ensure_jars(self.version)
        java = find_java()
        self._dir.logs.mkdir(parents=True, exist_ok=True)
        write_server_properties(
            self.config_path, port, controller_port, self._dir.data, self._extra_properties
        )
        format_storage_once(java, libs, self._dir)
        return broker_command(java, libs, self._jvm_options, self._dir)

    def _new_state(self, pid: int, ports: tuple[int, ...]) -> BrokerState:
        return BrokerState(
            pid=pid,
            port=ports[0],
            controller_port=ports[1],
            bootstrap_servers=self.address,
            cmdline_marker=self.marker,
            kafka_version=self.version,
        )

    def _readiness_attempts(self) -> Generator[str | None, None, None]:
        return metadata_attempts(self.port)


def default_run_dir() -> Path:
    """Return ``<cache>/run/kafka``: outside the repository, shared by CLI invocations."""
    return LocalBroker.default_run_dir()


__all__ = [
    "DEFAULT_JVM_OPTIONS",
    "DEFAULT_PORT",
    "STATE_FILE",
    "BrokerStatus",
    "LocalBroker",
    "default_run_dir",
    "kafka_uuid",
]
