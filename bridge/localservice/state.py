"""The state file: how one process tells another where its service runs.

``tracebridge kafka stop`` runs in a different process from the ``start`` that launched
the JVM, so everything it needs (pid, ports, the command-line marker) is written to the
run directory as JSON. The file is present while the service runs and removed once it is
stopped. Each service declares its own fields in a ``ServiceState`` subclass.
"""

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class ServiceState:
    """What every state file holds; a subclass adds its other ports, address and version.

    ``port_fields`` names the fields holding the ports, in the order of the service's
    ``port_roles``; ``address_field`` the one holding what clients connect to.
    """

    port_fields: ClassVar[tuple[str, ...]] = ("port",)
    address_field: ClassVar[str]

    pid: int
    port: int
    cmdline_marker: str
    """What ``/proc/<pid>/cmdline`` must carry for ``pid`` to be ours."""
    started_at: str = field(default_factory=_now)

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports, the main one first."""
        ports: tuple[int, ...] = tuple(getattr(self, name) for name in self.port_fields)
        return ports

    @property
    def address(self) -> str:
        """What a client connects to (bootstrap servers, a URL)."""
        return str(getattr(self, self.address_field))


StateT = TypeVar("StateT", bound=ServiceState)


def read_state(path: Path, state_type: type[StateT]) -> StateT | None:
    """Return the state in ``path``, or None when it is missing or unreadable.

    An unreadable file is logged and treated as absent rather than raised: it can only
    describe a process that nobody can find any more, and it must not block a fresh start.
    """
    try:
        raw: Any = json.loads(path.read_text())
        state = state_type(**raw)
        for item in dataclasses.fields(state):
            if item.type in (int, "int") and not isinstance(getattr(state, item.name), int):
                raise TypeError(f"{item.name} must be an integer")
        return state
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("Ignoring unreadable %s: %s", path, exc)
        return None


def write_state(path: Path, state: ServiceState) -> None:
    """Write ``state`` to ``path`` so that readers see either the old file or the new one."""
    write_json_atomically(path, dataclasses.asdict(state))


def write_json_atomically(path: Path, data: Mapping[str, object]) -> None:
    """Write via rename, so a concurrent status() never reads half a file."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
