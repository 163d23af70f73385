"""Run one Apicurio Registry (in-memory H2 storage) on 127.0.0.1, owned through a run dir.

Why a hand-rolled launcher: no Docker here, so the registry runs from the app that
``bridge.localregistry.jars`` caches, with the lifecycle of every local service
(``bridge.localservice.service``): ``registry.json`` lets another process (``tracebridge
registry stop``) find the JVM, and nothing is signalled unless its ``/proc/<pid>/cmdline``
carries this run directory's marker::

    <run_dir>/application.properties   rewritten on every start; its path is the marker
    <run_dir>/logs/registry.out        the JVM's stdout/stderr
    <run_dir>/registry.json            pid, ports, version: present while the registry runs

Storage is Apicurio's default in-memory H2 database: subjects vanish when the registry
stops. That is what tests want (every session starts clean); a registry whose ids must
outlive restarts belongs in a deployment (docker-compose.yml), not here.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from bridge.localregistry import LocalRegistryError
from bridge.localregistry.jars import DEFAULT_APICURIO_VERSION, RUNNER_JAR, ensure_app
from bridge.localregistry.java import ensure_registry_java
from bridge.localservice.ports import HOST
from bridge.localservice.process import POLL_INTERVAL_S
from bridge.localservice.service import LocalService, ServiceStatus
from bridge.localservice.state import ServiceState

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


@dataclass(frozen=True, kw_only=True)
class RegistryState(ServiceState):
    """The content of registry.json: enough for another process to find and stop the JVM."""

    port_fields = ("port", "management_port")
    address_field = "url"

    management_port: int
    url: str
    apicurio_version: str
    java: str


@dataclass(frozen=True)
class RegistryStatus(ServiceStatus):
    """What ``LocalRegistry.status()`` found; ``pid`` and ``url`` are None when not running."""

    @property
    def url(self) -> str | None:
        """The Confluent-compatible URL of the running registry."""
        return self.address


class LocalRegistry(LocalService[RegistryState, RegistryStatus]):
    """One Apicurio Registry on 127.0.0.1, owned through its run directory.

    ``start()`` and ``stop()`` are idempotent, like ``LocalBroker``'s, so tests, the CLI
    and scripts can call them without asking first whether someone else did.
    """

    label = "registry"
    error = LocalRegistryError
    run_dir_name = "registry"
    # Quarkus reads its config from the path this JVM argument names.
    config_file_name = "application.properties"
    marker_prefix = "-Dquarkus.config.locations="
    state_file_name = STATE_FILE
    log_file_name = "registry.out"
    port_roles = ("HTTP", "management")
    address_template = "http://{host}:{port}" + CCOMPAT_PATH
    description_template = "Apicurio Registry {version}"
    state_type = RegistryState
    status_type = RegistryStatus

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
        super().__init__(run_dir, (port, management_port), apicurio_version, jvm_options)
        self._java: Path | None = None

    @classmethod
    def _from_state(cls, run_dir: Path, state: RegistryState | None) -> Self:
        if state is None:
            return cls(run_dir)
        return cls(run_dir, state.port, state.management_port, state.apicurio_version)

    # The Confluent-compatible API, what ``SchemaRegistryClient`` takes as ``url``.
    url = LocalService.address

    def _provision(self, ports: tuple[int, ...]) -> list[str]:
        """Fetch the app and a Java 21+ runtime (each once) and write the config."""
        app = ensure_app(self.version)
        self._java = ensure_registry_java()
        self._write_properties(*ports)
        return [str(self._java), *self._jvm_options, self.marker, "-jar", str(app / RUNNER_JAR)]

    def _new_state(self, pid: int, ports: tuple[int, ...]) -> RegistryState:
        return RegistryState(
            pid=pid,
            port=ports[0],
            management_port=ports[1],
            url=self.address,
            cmdline_marker=self.marker,
            apicurio_version=self.version,
            java=str(self._java),
        )

    def _readiness_attempts(self) -> Generator[str | None, None, None]:
        """Ready once ``GET <url>/subjects`` answers 200."""
        while True:
            yield _subjects_problem(self.url, PROBE_TIMEOUT_S)
            time.sleep(POLL_INTERVAL_S)

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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in props.items()]
        self.config_path.write_text(_HEADER + "\n".join(lines) + "\n")


def _subjects_problem(url: str, timeout: float) -> str | None:
    """Return None if ``GET <url>/subjects`` answers 200, else what went wrong."""
    probe = f"{url.rstrip('/')}/subjects"
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as response:  # noqa: S310 (a registry URL: http://127.0.0.1 when probing ours)
            if response.status == 200:
                return None
            return f"GET {probe}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"GET {probe}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"GET {probe}: {getattr(exc, 'reason', exc)}"
    except ValueError as exc:
        return f"GET {probe}: {exc}"


def registry_answers(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Return whether ``GET <url>/subjects`` answers 200 (for any registry, local or not)."""
    return _subjects_problem(url, timeout) is None


def default_run_dir() -> Path:
    """Return ``<cache>/run/registry``, next to the broker's ``<cache>/run/kafka``."""
    return LocalRegistry.default_run_dir()
