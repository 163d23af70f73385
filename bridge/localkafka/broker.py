"""Run one single-node Apache Kafka broker (KRaft, broker and controller in one JVM).

Why a hand-rolled launcher: the project's machines have Java and Maven Central but no Docker
and no Apache downloads, so testcontainers and the tarball scripts are out. The broker runs
from the jars ``bridge.localkafka.jars`` caches, with the config of
shared/reference/kafka-local.md (sections 1.5-1.10).

A broker is owned through its run directory (layout in ``bridge.localkafka.rundir``):
its ``broker.json`` lets another process (``tracebridge kafka stop``) find the broker, and
because a pid in a file can go stale and be reused by an unrelated process, nothing is
signalled unless its ``/proc/<pid>/cmdline`` names this run directory's server.properties.

This module is the lifecycle (start or adopt, stop, status); the mechanics it sequences
live in the sibling modules listed in the package docstring.
"""

import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION
from bridge.localkafka.jvm import DEFAULT_JVM_OPTIONS, kafka_uuid, launch_broker
from bridge.localkafka.ports import HOST, resolve_ports
from bridge.localkafka.process import carries_marker, pid_alive, terminate_marked
from bridge.localkafka.properties import check_extra_properties
from bridge.localkafka.provision import prepare_fresh_start
from bridge.localkafka.readiness import BrokerExitedError, wait_until_ready
from bridge.localkafka.rundir import RunDir, default_run_dir
from bridge.localkafka.state import STATE_FILE, BrokerState, read_state, write_state

logger = logging.getLogger(__name__)

# Not 9092, so a Kafka the developer already runs is left alone; the reference's multi-node
# layout (kafka-local.md 1.11) uses the same i9092 pattern.
DEFAULT_PORT = 19092


@dataclass(frozen=True)
class BrokerStatus:
    """What ``LocalBroker.status()`` found; ``pid`` and servers are None when not running."""

    running: bool
    pid: int | None
    bootstrap_servers: str | None


class LocalBroker:
    """One single-node KRaft broker on 127.0.0.1, owned through its run directory.

    ``start()`` and ``stop()`` are idempotent so that tests, the CLI and scripts can call
    them without first asking whether someone else already did.
    """

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
        self._dir = RunDir(run_dir.expanduser().resolve())
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._port: int | None = port or None
        self._controller_port: int | None = controller_port or None
        self._kafka_version = kafka_version
        self._jvm_options = tuple(jvm_options)
        self._extra_properties = dict(extra_properties or {})
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Self:
        """Rebuild the broker that a (possibly other) process started in ``run_dir``.

        Without a readable broker.json this returns a default, stopped broker, so
        ``status()`` and ``stop()`` still work on a run dir that holds nothing.
        """
        instance = cls(run_dir)
        state = read_state(instance._dir.state_file)
        if state is None:
            return instance
        return cls(
            run_dir,
            port=state.port,
            controller_port=state.controller_port,
            kafka_version=state.kafka_version,
        )

    @property
    def run_dir(self) -> Path:
        """The directory holding this broker's config, data, logs and state."""
        return self._dir.path

    @property
    def server_properties(self) -> Path:
        """The config path; it doubles as the marker that identifies our JVM in /proc."""
        return self._dir.server_properties

    @property
    def log_path(self) -> Path:
        """Where the JVM's stdout and stderr go; read it when a start fails."""
        return self._dir.broker_out

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``; with port 0 it is known only once ``start()`` picked one."""
        if self._port is None:
            raise LocalKafkaError(
                "The broker's port is chosen at start() (port=0); start the broker first."
            )
        return f"{HOST}:{self._port}"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start the broker and return once a client can fetch metadata from it.

        ``timeout`` covers the broker's own startup (measured ~2.5 s warm, 2 cores), not the
        one-time jar download. If this run dir's broker already runs, it is adopted instead:
        a second ``start()`` is a no-op. On failure the JVM we launched is stopped again and
        the error carries the tail of broker.out.
        """
        self._reap()
        state = read_state(self._dir.state_file)
        if state is not None:
            if self._is_our_broker(state.pid):
                self._adopt(state, timeout)
                return
            logger.info(
                "Clearing stale %s (pid %d is not this run dir's broker).",
                self._dir.state_file,
                state.pid,
            )
            self._dir.state_file.unlink(missing_ok=True)

        port, controller_port = self._choose_ports()
        java, libs = prepare_fresh_start(
            self._dir, port, controller_port, self._kafka_version, self._extra_properties
        )
        started = time.monotonic()
        self._proc = launch_broker(java, libs, self._jvm_options, self._dir)
        pid = self._proc.pid
        # Written before readiness, so a crashed caller still leaves a way to stop the JVM.
        new_state = BrokerState.of_new_broker(
            pid, port, controller_port, self._dir.marker, self._kafka_version
        )
        write_state(self._dir.state_file, new_state)
        try:
            self._wait_ready(pid, started + timeout)
        except BaseException:
            # Including KeyboardInterrupt: the caller never got a running broker, so nobody
            # else would stop this JVM.
            self.stop()
            raise
        logger.info(
            "Kafka %s broker ready at %s in %.1f s (pid %d, run dir %s).",
            self._kafka_version,
            self.bootstrap_servers,
            time.monotonic() - started,
            pid,
            self.run_dir,
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker gracefully (SIGTERM), or kill it after ``timeout`` seconds.

        Returns whether a broker was stopped. A pid in broker.json whose command line does
        not name our server.properties is never signalled: the file is only cleared.
        """
        self._reap()
        state = read_state(self._dir.state_file)
        pid = state.pid if state is not None else None
        if pid is None and self._proc is not None:
            pid = self._proc.pid
        if pid is None:
            return False
        stopped = False
        if self._is_our_broker(pid):
            logger.info("Stopping the Kafka broker (pid %d).", pid)
            stopped = terminate_marked(pid, self._dir.marker, timeout, self._proc, self.log_path)
        elif pid_alive(pid):
            logger.warning(
                "Not signalling pid %d: its command line does not mention %s; "
                "clearing the stale %s.",
                pid,
                self.server_properties,
                self._dir.state_file,
            )
        self._dir.state_file.unlink(missing_ok=True)
        if self._proc is not None and self._proc.pid == pid:
            self._proc = None
        return stopped

    def status(self) -> BrokerStatus:
        """Report whether this run dir's broker process is alive (not whether it is healthy)."""
        self._reap()
        state = read_state(self._dir.state_file)
        if state is None or not self._is_our_broker(state.pid):
            return BrokerStatus(running=False, pid=None, bootstrap_servers=None)
        return BrokerStatus(running=True, pid=state.pid, bootstrap_servers=state.bootstrap_servers)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------

    def _adopt(self, state: BrokerState, timeout: float) -> None:
        """Take over an already running broker of this run dir, if it is what was asked for."""
        for requested, actual, what in (
            (self._requested_port, state.port, "port"),
            (self._requested_controller_port, state.controller_port, "controller port"),
        ):
            if requested not in (0, actual):
                raise LocalKafkaError(
                    f"The broker in {self.run_dir} already runs (pid {state.pid}) with {what} "
                    f"{actual}, not {requested}; stop it first to change ports."
                )
        self._port, self._controller_port = state.port, state.controller_port
        self._wait_ready(state.pid, time.monotonic() + timeout)
        logger.info(
            "Kafka broker already running at %s (pid %d).", state.bootstrap_servers, state.pid
        )

    def _choose_ports(self) -> tuple[int, int]:
        """Return the ports, resolving 0 to free ports on first use only.

        Restarts of the same object therefore keep their ports, so clients configured with
        ``bootstrap_servers`` before a restart still reach the broker after it.
        """
        self._port, self._controller_port = resolve_ports(self._port, self._controller_port)
        return self._port, self._controller_port

    def _wait_ready(self, pid: int, deadline: float) -> None:
        """Wait until ``pid`` serves metadata; if it died instead, forget it and re-raise."""
        port, _ = self._choose_ports()
        try:
            wait_until_ready(pid, port, deadline, self._proc, self._dir)
        except BrokerExitedError:
            self._reap()
            self._dir.state_file.unlink(missing_ok=True)
            raise

    def _reap(self) -> None:
        """Collect our child if it died, so a zombie is not mistaken for a live broker."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _is_our_broker(self, pid: int) -> bool:
        return carries_marker(pid, self._dir.marker)


__all__ = [
    "DEFAULT_JVM_OPTIONS",
    "DEFAULT_PORT",
    "STATE_FILE",
    "BrokerStatus",
    "LocalBroker",
    "default_run_dir",
    "kafka_uuid",
]
