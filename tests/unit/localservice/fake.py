"""A ``LocalService`` whose "JVM" is a tiny Python TCP server: the lifecycle without Java.

The server accepts and closes connections on the port it is given, so readiness is the
port accepting; ``script`` lets a test run something else (a process that exits at once).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from bridge.errors import BridgeError
from bridge.localservice.ports import port_accepts
from bridge.localservice.service import LocalService, ServiceStatus
from bridge.localservice.state import ServiceState

SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[2])))
server.listen()
print("listening", flush=True)
while True:
    server.accept()[0].close()
"""

STATE_FILE = "fake.json"


class FakeError(BridgeError):
    """What the fake service raises, standing for ``LocalKafkaError``."""


@dataclass(frozen=True, kw_only=True)
class FakeState(ServiceState):
    address_field = "endpoint"

    endpoint: str


@dataclass(frozen=True)
class FakeStatus(ServiceStatus):
    pass


class FakeService(LocalService[FakeState, FakeStatus]):
    label = "fake service"
    error = FakeError
    run_dir_name = "fake"
    config_file_name = "fake.conf"
    marker_prefix = "--config="
    state_file_name = STATE_FILE
    log_file_name = "fake.out"
    port_roles = ("client",)
    address_template = "{host}:{port}"
    description_template = "Fake service {version}"
    state_type = FakeState
    status_type = FakeStatus

    def __init__(self, run_dir: Path, port: int = 0, script: str = SERVER) -> None:
        super().__init__(run_dir, (port,), "1.0", ())
        self._script = script

    @classmethod
    def _from_state(cls, run_dir: Path, state: FakeState | None) -> Self:
        return cls(run_dir) if state is None else cls(run_dir, port=state.port)

    def _provision(self, ports: tuple[int, ...]) -> list[str]:
        return [sys.executable, "-c", self._script, self.marker, str(ports[0])]

    def _new_state(self, pid: int, ports: tuple[int, ...]) -> FakeState:
        return FakeState(pid=pid, port=ports[0], cmdline_marker=self.marker, endpoint=self.address)

    def _readiness_attempts(self) -> Generator[str | None, None, None]:
        while True:
            yield None if port_accepts(self.port, 0.5) else "the port is closed"
            time.sleep(0.05)
