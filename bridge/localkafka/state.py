"""``broker.json``: how one process tells another where its broker runs.

``tracebridge kafka stop`` runs in a different process from the ``start`` that launched
the JVM, so everything it needs (pid, ports, the command-line marker) is written to the
run directory. The file is present while the broker runs and removed once it is stopped.
"""

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from bridge.localkafka.ports import HOST

logger = logging.getLogger(__name__)

STATE_FILE = "broker.json"


@dataclass(frozen=True)
class BrokerState:
    """The content of broker.json: enough for another process to find and stop the broker."""

    pid: int
    port: int
    controller_port: int
    bootstrap_servers: str
    cmdline_marker: str
    kafka_version: str
    started_at: str

    @classmethod
    def of_new_broker(
        cls, pid: int, port: int, controller_port: int, cmdline_marker: str, kafka_version: str
    ) -> Self:
        """Describe a broker JVM launched just now."""
        return cls(
            pid=pid,
            port=port,
            controller_port=controller_port,
            bootstrap_servers=f"{HOST}:{port}",
            cmdline_marker=cmdline_marker,
            kafka_version=kafka_version,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def read_state(path: Path) -> BrokerState | None:
    """Return the state in ``path``, or None when it is missing or unreadable.

    An unreadable file is logged and treated as absent rather than raised: it can only
    describe a broker that nobody can find any more, and it must not block a fresh start.
    """
    try:
        raw: Any = json.loads(path.read_text())
        state = BrokerState(**raw)
        if not all(isinstance(n, int) for n in (state.pid, state.port, state.controller_port)):
            raise TypeError("pid and ports must be integers")
        return state
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("Ignoring unreadable %s: %s", path, exc)
        return None


def write_state(path: Path, state: BrokerState) -> None:
    """Write ``state`` to ``path`` so that readers see either the old file or the new one."""
    write_json_atomically(path, dataclasses.asdict(state))


def write_json_atomically(path: Path, data: Mapping[str, object]) -> None:
    """Write via rename, so a concurrent status() never reads half a file."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
