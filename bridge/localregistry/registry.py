"""Run one Apicurio Registry (in-memory H2 storage) on 127.0.0.1, owned through a run dir.

Why a hand-rolled launcher: no Docker here, so the registry runs from the app that
``bridge.localregistry.jars`` caches, like the broker of ``bridge.localkafka``, and with
the same ownership rules: ``registry.json`` lets another process (``tracebridge registry
stop``) find the JVM, and nothing is signalled unless its ``/proc/<pid>/cmdline`` carries
this run directory's marker (``bridge.localkafka.process``)::

    <run_dir>/application.properties   rewritten on every start; its path is the marker
    <run_dir>/logs/registry.out        the JVM's stdout/stderr
    <run_dir>/registry.json            pid, ports, version: present while the registry runs

Storage is Apicurio's default in-memory H2 database: subjects vanish when the registry
stops. That is what tests want (every session starts clean); a registry whose ids must
outlive restarts belongs in a deployment (docker-compose.yml), not here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.jars import cache_root
from bridge.localkafka.jvm import log_tail
from bridge.localkafka.ports import HOST, ensure_port_free, resolve_ports
from bridge.localkafka.process import (
    POLL_INTERVAL_S,
    carries_marker,
    pid_alive,
    terminate_marked,
)
from bridge.localkafka.state import write_json_atomically
from bridge.localregistry import LocalRegistryError
from bridge.localregistry.jars import DEFAULT_APICURIO_VERSION, RUNNER_JAR, ensure_app
from bridge.localregistry.java import ensure_registry_java

logger = logging.getLogger(__name__)

# Not 8081 (Confluent's and Apicurio's usual port), so a registry the developer already
# runs is left alone; the same reasoning as the broker's 19092.
DEFAULT_PORT = 18081

# The Confluent-compatible API; v7 is what confluent-kafka 2.x speaks
# (shared/reference/kafka-local.md section 2).
CCOMPAT_PATH = "/apis/ccompat/v7"

# Measured on 2 cores with Apicurio 3.3.3 on Java 25: ready in ~3.4 s, ~290 MB RSS. The
# registry holds a few dozen schemas, so a small heap and the serial collector suffice;
# C1 only (TieredStopAtLevel=1) shortens startup, and the registry is never a hot path.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

STATE_FILE = "registry.json"

# Per-request timeout of the readiness probe; loopback answers in milliseconds once up.
PROBE_TIMEOUT_S = 2.0

_HEADER = "# Written by bridge.localregistry.registry on every start; edits are overwritten.\n"


def default_run_dir() -> Path:
    """Return ``<cache>/run/registry``, next to the broker's ``<cache>/run/kafka``."""
    return cache_root() / "run" / "registry"


@dataclass(frozen=True)
class RegistryState:
    """The content of registry.json: enough for another process to find and stop the JVM."""

    pid: int
    port: int
    management_port: int
    url: str
    cmdline_marker: str
    apicurio_version: str
    java: str
    started_at: str


@dataclass(frozen=True)
class RegistryStatus:
    """What ``LocalRegistry.status()`` found; ``pid`` and ``url`` are None when not running."""

    running: bool
    pid: int | None
    url: str | None


class LocalRegistry:
    """One Apicurio Registry on 127.0.0.1, owned through its run directory.

    ``start()`` and ``stop()`` are idempotent, like ``LocalBroker``'s, so tests, the CLI
    and scripts can call them without asking first whether someone else did.
    """

    def __init__(
        self,
        run_dir: Path,
        port: int = DEFAULT_PORT,
        management_port: int = 0,
        apicurio_version: str = DEFAULT_APICURIO_VERSION,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
    ) -> None:
        """Describe a registry; nothing happens until ``start()``.

        A port of 0 means "pick a free one at start". Quarkus always opens a separate
        management interface (health, metrics; a build-time setting of the app), so the
        registry needs two ports.
        """
        self._path = run_dir.expanduser().resolve()
        self._requested_port = port
        self._requested_management_port = management_port
        self._port: int | None = port or None
        self._management_port: int | None = management_port or None
        self._version = apicurio_version
        self._jvm_options = tuple(jvm_options)
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Self:
        """Rebuild the registry that a (possibly other) process started in ``run_dir``."""
        instance = cls(run_dir)
        state = instance._read_state()
        if state is None:
            return instance
        return cls(
            run_dir,
            port=state.port,
            management_port=state.management_port,
            apicurio_version=state.apicurio_version,
        )

    # -- paths --------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The directory holding this registry's config, log and state."""
        return self._path

    @property
    def properties_path(self) -> Path:
        """The Quarkus config file; its path on the command line identifies our JVM."""
        return self._path / "application.properties"

    @property
    def marker(self) -> str:
        """The exact JVM argument ``bridge.localkafka.process`` looks for in /proc."""
        return f"-Dquarkus.config.locations={self.properties_path}"

    @property
    def log_path(self) -> Path:
        """Where the JVM's stdout and stderr go; read it when a start fails."""
        return self._path / "logs" / "registry.out"

    @property
    def state_file(self) -> Path:
        """registry.json, present while the registry runs."""
        return self._path / STATE_FILE

    @property
    def port(self) -> int:
        """The HTTP port; with port 0 it is known only once ``start()`` picked one."""
        if self._port is None:
            raise LocalRegistryError(
                "The registry's port is chosen at start() (port=0); start the registry first."
            )
        return self._port

    @property
    def url(self) -> str:
        """The Confluent-compatible API, what ``SchemaRegistryClient`` takes as ``url``."""
        return f"http://{HOST}:{self.port}{CCOMPAT_PATH}"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start the registry and return once ``GET <url>/subjects`` answers 200.

        ``timeout`` covers the JVM's startup (measured ~3.5 s on 2 cores), not the
        one-time fetch of the app and of a Java 21+ runtime. If this run dir's registry
        already runs it is adopted instead. On failure the JVM we launched is stopped
        again and the error carries the tail of registry.out.
        """
        self._reap()
        state = self._read_state()
        if state is not None:
            if carries_marker(state.pid, self.marker):
                self._adopt(state, timeout)
                return
            logger.info(
                "Clearing stale %s (pid %d is not this run dir's registry).",
                self.state_file,
                state.pid,
            )
            self.state_file.unlink(missing_ok=True)

        port, management_port = resolve_ports(self._port, self._management_port)
        self._port, self._management_port = port, management_port
        _ensure_port_free(port, "HTTP")
        _ensure_port_free(management_port, "management")
        app = ensure_app(self._version)
        java = ensure_registry_java()
        self._write_properties(port, management_port)
        started = time.monotonic()
        self._proc = self._launch(java, app)
        pid = self._proc.pid
        # Written before readiness, so a crashed caller still leaves a way to stop the JVM.
        state = RegistryState(
            pid=pid,
            port=port,
            management_port=management_port,
            url=self.url,
            cmdline_marker=self.marker,
            apicurio_version=self._version,
            java=str(java),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_json_atomically(self.state_file, dataclasses.asdict(state))
        try:
            self._wait_ready(pid, started + timeout)
        except BaseException:
            # Including KeyboardInterrupt: the caller never got a running registry.
            self.stop()
            raise
        logger.info(
            "Apicurio Registry %s ready at %s in %.1f s (pid %d, run dir %s).",
            self._version,
            self.url,
            time.monotonic() - started,
            pid,
            self.run_dir,
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the registry (SIGTERM, then SIGKILL after ``timeout``); return whether one was.

        A pid in registry.json whose command line lacks our marker is never signalled.
        """
        self._reap()
        state = self._read_state()
        pid = state.pid if state is not None else None
        if pid is None and self._proc is not None:
            pid = self._proc.pid
        if pid is None:
            return False
        stopped = False
        if carries_marker(pid, self.marker):
            logger.info("Stopping the registry (pid %d).", pid)
            # SIGTERM runs Quarkus' shutdown (measured: "stopped in 0.06s").
            stopped = terminate_marked(pid, self.marker, timeout, self._proc, self.log_path)
        elif pid_alive(pid):
            logger.warning(
                "Not signalling pid %d: its command line does not carry %s; clearing the stale %s.",
                pid,
                self.marker,
                self.state_file,
            )
        self.state_file.unlink(missing_ok=True)
        if self._proc is not None and self._proc.pid == pid:
            self._proc = None
        return stopped

    def status(self) -> RegistryStatus:
        """Report whether this run dir's registry process is alive (not whether it answers)."""
        self._reap()
        state = self._read_state()
        if state is None or not carries_marker(state.pid, self.marker):
            return RegistryStatus(running=False, pid=None, url=None)
        return RegistryStatus(running=True, pid=state.pid, url=state.url)

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

    def _adopt(self, state: RegistryState, timeout: float) -> None:
        for requested, actual, what in (
            (self._requested_port, state.port, "port"),
            (self._requested_management_port, state.management_port, "management port"),
        ):
            if requested not in (0, actual):
                raise LocalRegistryError(
                    f"The registry in {self.run_dir} already runs (pid {state.pid}) with "
                    f"{what} {actual}, not {requested}; stop it first to change ports."
                )
        self._port, self._management_port = state.port, state.management_port
        self._wait_ready(state.pid, time.monotonic() + timeout)
        logger.info("Registry already running at %s (pid %d).", state.url, state.pid)

    def _write_properties(self, port: int, management_port: int) -> None:
        props = {
            # Loopback only: this registry is for tests and local runs, never a network.
            "quarkus.http.host": HOST,
            "quarkus.http.port": str(port),
            "quarkus.management.host": HOST,
            "quarkus.management.port": str(management_port),
            # One INFO line per request would bury a startup error in registry.out.
            "quarkus.http.access-log.enabled": "false",
            "quarkus.banner.enabled": "false",
            # Apicurio's defaults, stated so the file says what the registry is.
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in props.items()]
        self.properties_path.write_text(_HEADER + "\n".join(lines) + "\n")

    def _launch(self, java: Path, app: Path) -> subprocess.Popen[bytes]:
        cmd = [str(java), *self._jvm_options, self.marker, "-jar", str(app / RUNNER_JAR)]
        logger.debug("Launching %s", " ".join(cmd))
        with self.log_path.open("ab") as out:
            # A new session keeps a Ctrl-C aimed at the test run or CLI away from the JVM;
            # it is stopped through stop(). The run dir is its working directory, so
            # nothing Quarkus writes relative to it lands in the repository.
            return subprocess.Popen(
                cmd,
                cwd=self._path,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, pid: int, deadline: float) -> None:
        """Return once ``GET <url>/subjects`` answers 200; fail at once if the JVM died."""
        probe_url = f"{self.url}/subjects"
        problem = "no answer yet"
        while True:
            self._raise_if_exited(pid)
            try:
                with urllib.request.urlopen(probe_url, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 (a fixed http://127.0.0.1 URL)
                    if response.status == 200:
                        return
                    problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
            if time.monotonic() >= deadline:
                raise LocalRegistryError(
                    f"The registry (pid {pid}) did not answer GET {probe_url} with 200 in "
                    f"time: {problem}.\n{log_tail(self.log_path)}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _raise_if_exited(self, pid: int) -> None:
        if self._proc is not None and self._proc.pid == pid:
            code = self._proc.poll()
            if code is None:
                return
            self._proc = None
        elif carries_marker(pid, self.marker):
            return
        else:
            code = None
        self.state_file.unlink(missing_ok=True)
        status = f" with status {code}" if code is not None else ""
        raise LocalRegistryError(
            f"The registry (pid {pid}) exited{status} before it became ready.\n"
            f"{log_tail(self.log_path)}"
        )

    def _read_state(self) -> RegistryState | None:
        """The state in registry.json, or None when missing or unreadable (logged)."""
        try:
            raw: Any = json.loads(self.state_file.read_text())
            state = RegistryState(**raw)
            if not all(isinstance(n, int) for n in (state.pid, state.port, state.management_port)):
                raise TypeError("pid and ports must be integers")
            return state
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("Ignoring unreadable %s: %s", self.state_file, exc)
            return None

    def _reap(self) -> None:
        """Collect our child if it died, so a zombie is not mistaken for a live registry."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None


def _ensure_port_free(port: int, role: str) -> None:
    """``bridge.localkafka.ports.ensure_port_free``, with a message that names the registry."""
    try:
        ensure_port_free(port, role)
    except LocalKafkaError as exc:
        raise LocalRegistryError(
            f"Cannot start the local registry: its {role} port {port} on {HOST} is already "
            "in use. Stop whatever listens there or choose another port (0 picks a free one)."
        ) from exc


def registry_answers(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Return whether ``GET <url>/subjects`` answers 200 (for any registry, local or not)."""
    probe = f"{url.rstrip('/')}/subjects"
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as response:  # noqa: S310 (the caller's registry URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
