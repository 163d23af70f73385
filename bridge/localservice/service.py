"""``LocalService``: the lifecycle of one JVM service owned through its run directory.

A service is owned through its run directory: the state file there lets another process
(``tracebridge kafka stop``) find the JVM, and because a pid in a file can go stale and be
reused by an unrelated process, nothing is signalled unless its ``/proc/<pid>/cmdline``
carries this run directory's marker (``bridge.localservice.process``)::

    <run_dir>/<config file>      rewritten on every start; its path is in the marker
    <run_dir>/logs/<name>.out    the JVM's stdout/stderr, quoted when a start fails
    <run_dir>/<name>.json        pid, ports, marker: present while the service runs

The base class sequences start (or adopt), readiness, stop and status; a subclass says
what is its own: its names (class attributes), how to provision and launch (config,
artifacts, Java), the state it records, and how to tell that it is ready.
"""

import contextlib
import logging
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from bridge.localservice import cache
from bridge.localservice.output import log_tail
from bridge.localservice.ports import HOST, ensure_port_free, resolve_ports
from bridge.localservice.process import carries_marker, pid_alive, spawn_logged, terminate_marked
from bridge.localservice.state import ServiceState, read_state, write_state


@dataclass(frozen=True)
class ServiceStatus:
    """What ``LocalService.status()`` found; ``pid`` and ``address`` are None when stopped."""

    running: bool
    pid: int | None
    address: str | None


StateT = TypeVar("StateT", bound=ServiceState)
StatusT = TypeVar("StatusT", bound=ServiceStatus)


class LocalService(ABC, Generic[StateT, StatusT]):
    """One JVM service on 127.0.0.1, owned through its run directory.

    ``start()`` and ``stop()`` are idempotent so that tests, the CLI and scripts can call
    them without first asking whether someone else already did. Messages name the service
    by ``label`` and failures raise its ``error``.
    """

    label: ClassVar[str]
    """Names the service in messages, after "the": "Kafka broker", "registry"."""
    error: ClassVar[type[Exception]]
    run_dir_name: ClassVar[str]
    """The default run directory is ``<cache>/run/<run_dir_name>``."""
    config_file_name: ClassVar[str]
    """The config file in the run dir, whose path the JVM's command line carries."""
    marker_prefix: ClassVar[str] = ""
    """Put before the config path to make the marker ("-Dquarkus.config.locations=")."""
    state_file_name: ClassVar[str]
    log_file_name: ClassVar[str]
    port_roles: ClassVar[tuple[str, ...]]
    """One per port, the main (client-facing) port first: ("client", "controller")."""
    address_template: ClassVar[str]
    """What clients connect to, from ``{host}`` and ``{port}``: "{host}:{port}"."""
    description_template: ClassVar[str]
    """What runs, from ``{version}``, for the log line of a start: "Kafka {version} broker"."""
    state_type: type[StateT]
    status_type: type[StatusT]

    def __init__(
        self, run_dir: Path, ports: Sequence[int], version: str, jvm_options: Sequence[str]
    ) -> None:
        """Describe a service; nothing happens until ``start()``.

        A port of 0 means "pick a free port at start", which lets parallel test sessions
        run side by side.
        """
        if len(ports) != len(self.port_roles):
            raise ValueError(f"expected {len(self.port_roles)} ports, got {len(ports)}")
        self._path = run_dir.expanduser().resolve()
        self._requested_ports = tuple(ports)
        self._ports: tuple[int | None, ...] = tuple(port or None for port in ports)
        self._version = version
        self._jvm_options = tuple(jvm_options)
        self._proc: subprocess.Popen[bytes] | None = None
        # The subclass's module, so log lines keep naming the service's own logger.
        self._logger = logging.getLogger(type(self).__module__)

    @classmethod
    def default_run_dir(cls) -> Path:
        """Return ``<cache>/run/<run_dir_name>``, shared by CLI invocations."""
        return cache.default_run_dir(cls.run_dir_name)

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Self:
        """Rebuild the service that a (possibly other) process started in ``run_dir``.

        Without a readable state file this returns a default, stopped service, so
        ``status()`` and ``stop()`` still work on a run dir that holds nothing.
        """
        default = cls._from_state(run_dir, None)
        state = default._read_state()
        return default if state is None else cls._from_state(run_dir, state)

    # -- what a subclass says -----------------------------------------------------------

    @classmethod
    @abstractmethod
    def _from_state(cls, run_dir: Path, state: StateT | None) -> Self:
        """The service ``state`` describes (its ports, version), or the default one."""

    @abstractmethod
    def _provision(self, ports: tuple[int, ...]) -> list[str]:
        """Get the run dir ready (artifacts, Java, config) and return the JVM's command.

        Called only once the ports are known to be free; the command must carry
        ``marker`` as one of its arguments.
        """

    @abstractmethod
    def _new_state(self, pid: int, ports: tuple[int, ...]) -> StateT:
        """Describe the JVM launched just now as ``pid``."""

    @abstractmethod
    def _readiness_attempts(self) -> Generator[str | None, None, None]:
        """Try, over and over, whether the service is ready to serve clients.

        Yields None once it is, or what is still missing; pauses between attempts after a
        yield. It is closed once ready or given up on, so it may hold a client open.
        """

    # -- paths --------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The directory holding this service's config, logs and state."""
        return self._path

    @property
    def log_path(self) -> Path:
        """Where the JVM's stdout and stderr go; read it when a start fails."""
        return self._path / "logs" / self.log_file_name

    @property
    def config_path(self) -> Path:
        """The config file, rewritten on every start."""
        return self._path / self.config_file_name

    @property
    def marker(self) -> str:
        """The exact JVM argument that identifies this run directory's JVM in /proc."""
        return f"{self.marker_prefix}{self.config_path}"

    @property
    def state_file(self) -> Path:
        """The state file, present while the service runs."""
        return self._path / self.state_file_name

    @property
    def port(self) -> int:
        """The main port; with port 0 it is known only once ``start()`` picked one."""
        port = self._ports[0]
        if port is None:
            raise self.error(
                f"The {self.label}'s port is chosen at start() (port=0); "
                f"start the {self.label} first."
            )
        return port

    @property
    def address(self) -> str:
        """What a client connects to; with port 0 it is known only after ``start()``."""
        return self.address_template.format(host=HOST, port=self.port)

    @property
    def version(self) -> str:
        """The release that runs (or would run) from the cache."""
        return self._version

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start the service and return once it is ready for clients.

        ``timeout`` covers the JVM's own startup, not the one-time fetch of its artifacts.
        If this run dir's service already runs, it is adopted instead: a second
        ``start()`` is a no-op. On failure the JVM we launched is stopped again and the
        error carries the tail of its output.
        """
        self._reap()
        state = self._read_state()
        if state is not None:
            if self._owns(state.pid):
                self._adopt(state, timeout)
                return
            self._logger.info(
                "Clearing stale %s (pid %d is not this run dir's %s).",
                self.state_file,
                state.pid,
                self.label,
            )
            self.state_file.unlink(missing_ok=True)

        ports = self._choose_ports()
        # Checked before anything is written, so a busy port fails before any JVM runs.
        for role, port in zip(self.port_roles, ports, strict=True):
            ensure_port_free(port, role, self.label, self.error)
        cmd = self._provision(ports)
        started = time.monotonic()
        self._proc = spawn_logged(cmd, self.log_path, cwd=self._path)
        pid = self._proc.pid
        try:
            # Written before readiness, so a crashed caller still leaves a way to stop it.
            write_state(self.state_file, self._new_state(pid, ports))
            self._wait_ready(pid, started + timeout)
        except BaseException:
            # Including KeyboardInterrupt: the caller never got a running service, so
            # nobody else would stop this JVM (stop() falls back to our child's pid).
            self.stop()
            raise
        self._logger.info(
            "%s ready at %s in %.1f s (pid %d, run dir %s).",
            self.description_template.format(version=self._version),
            self.address,
            time.monotonic() - started,
            pid,
            self.run_dir,
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the service gracefully (SIGTERM), or kill it after ``timeout`` seconds.

        Returns whether one was stopped. A pid in the state file whose command line does
        not carry our marker is never signalled: the file is only cleared.
        """
        self._reap()
        state = self._read_state()
        pid = state.pid if state is not None else None
        if pid is None and self._proc is not None:
            pid = self._proc.pid
        if pid is None:
            return False
        stopped = False
        if self._owns(pid):
            self._logger.info("Stopping the %s (pid %d).", self.label, pid)
            stopped = terminate_marked(
                pid,
                self.marker,
                timeout,
                self._proc,
                what=self.label,
                log_path=self.log_path,
                error=self.error,
            )
        elif pid_alive(pid):
            self._logger.warning(
                "Not signalling pid %d: its command line does not carry %s; clearing the stale %s.",
                pid,
                self.marker,
                self.state_file,
            )
        self.state_file.unlink(missing_ok=True)
        if self._proc is not None and self._proc.pid == pid:
            self._proc = None
        return stopped

    def status(self) -> StatusT:
        """Report whether this run dir's JVM is alive (not whether it serves clients)."""
        self._reap()
        state = self._read_state()
        if state is None or not self._owns(state.pid):
            return self.status_type(running=False, pid=None, address=None)
        return self.status_type(running=True, pid=state.pid, address=state.address)

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

    def _adopt(self, state: StateT, timeout: float) -> None:
        """Take over an already running JVM of this run dir, if it is what was asked for."""
        for role, requested, actual in zip(
            self.port_roles, self._requested_ports, state.ports, strict=True
        ):
            if requested not in (0, actual):
                raise self.error(
                    f"The {self.label} in {self.run_dir} already runs (pid {state.pid}) with "
                    f"{role} port {actual}, not {requested}; stop it first to change ports."
                )
        self._ports = state.ports
        self._wait_ready(state.pid, time.monotonic() + timeout)
        self._logger.info(
            "The %s already runs at %s (pid %d).", self.label, state.address, state.pid
        )

    def _choose_ports(self) -> tuple[int, ...]:
        """Return the ports, resolving 0 to free ports on first use only.

        Restarts of the same object therefore keep their ports, so clients configured
        with ``address`` before a restart still reach the service after it.
        """
        ports = resolve_ports(self._ports)
        self._ports = ports
        return ports

    def _wait_ready(self, pid: int, deadline: float) -> None:
        """Return once ``pid`` is ready; fail at once if it died, or at ``deadline``."""
        with contextlib.closing(self._readiness_attempts()) as attempts:
            for problem in attempts:
                if problem is None:
                    return
                self._raise_if_exited(pid)
                if time.monotonic() >= deadline:
                    raise self.error(
                        f"The {self.label} (pid {pid}) was not ready at {self.address} in "
                        f"time: {problem}.\n{log_tail(self.log_path)}"
                    )
        raise AssertionError("_readiness_attempts() must not end")

    def _raise_if_exited(self, pid: int) -> None:
        """If ``pid`` died, forget it (and its state file) and raise with its output."""
        code: int | None = None
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: poll() also reaps it and tells the exit status.
            code = self._proc.poll()
            if code is None:
                return
            self._proc = None
        elif self._owns(pid):
            return
        self.state_file.unlink(missing_ok=True)
        status = f" with status {code}" if code is not None else ""
        raise self.error(
            f"The {self.label} (pid {pid}) exited{status} before it became ready.\n"
            f"{log_tail(self.log_path)}"
        )

    def _read_state(self) -> StateT | None:
        return read_state(self.state_file, self.state_type)

    def _reap(self) -> None:
        """Collect our child if it died, so a zombie is not mistaken for a live JVM."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _owns(self, pid: int) -> bool:
        return carries_marker(pid, self.marker)
