"""An emulated Bitcoin Core node's Cap'n Proto IPC interface, and its Python driver.

Why: no ``bitcoin-node`` built with the proposed tracing interfaces exists where the
bridge is developed, yet the IPC source must be tested and benchmarked against a real
Cap'n Proto peer over a real Unix socket. ``python -m bridge.emulator.ipc_node``
serves ``Init`` from one schema set in ``schemas/`` (``proposed`` by default; ``v30``,
``v31`` and ``master`` for version tests) and behaves like a node built with the
proposals: subscriptions return Handlers, callbacks arrive with exact, recorded
values, the net stream batches and drops as the 0xB10C prototype does. See
:mod:`bridge.emulator.ipc_scenario` for the options, report and record, and
``schemas/README.md`` for what is merged and what is proposed.

Typical use::

    with IpcNode() as node:
        node.start(IpcScenario(streams=("utxo",), count=100, wait_start=True),
                   record=tmp / "rec.jsonl")
        client = connect(node.socket)      # subscribe through Init.makeUtxoTracing
        node.go()                          # SIGUSR1: start the streams
        report = node.wait(timeout=30)
    assert report.streams["utxo"].sent == 100
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from bridge.emulator.ipc_report import IpcReport
from bridge.emulator.ipc_scenario import IpcScenario, build_parser, scenario_from_args
from bridge.emulator.process import EmulatorProcess

__all__ = ["IpcNode", "IpcNodeError", "IpcNodeTimeout", "main"]

# Importing pycapnp and parsing the schemas takes well under a second; allow for a
# loaded machine.
READY_TIMEOUT_S = 30.0
# Unix socket paths must fit sun_path (108 bytes including the NUL).
MAX_SOCKET_PATH = 107


class IpcNodeError(RuntimeError):
    """The emulated node could not be started or did not end cleanly."""


class IpcNodeTimeout(IpcNodeError):
    """``IpcNode.wait`` ran out of time; the process is still running (``stop`` it)."""


class IpcNode(EmulatorProcess[IpcReport]):
    """A running emulated IPC node process, usable as a context manager.

    ``start`` launches it and returns once it printed ``READY pid=<pid>`` (the socket
    listens). The rest of the lifecycle (``go``, ``wait``, ``stop`` with SIGTERM,
    cleanup) is :class:`~bridge.emulator.process.EmulatorProcess`'s.
    """

    noun = "node"
    error = IpcNodeError
    timeout_error = IpcNodeTimeout

    def __init__(self, python: str | None = None) -> None:
        super().__init__()
        self._python = python or sys.executable
        self._socket: Path | None = None

    @property
    def socket(self) -> Path:
        """The Unix socket the node listens on."""
        if self._socket is None:
            raise IpcNodeError("the node has not been started")
        return self._socket

    def start(
        self,
        scenario: IpcScenario | None = None,
        record: Path | None = None,
        *,
        socket: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> Self:
        """Launch the node and wait for its READY line; returns ``self``."""
        scenario = scenario if scenario is not None else IpcScenario()
        workdir = self._make_workdir("ipc_node-")
        self._socket = socket if socket is not None else workdir / "node.sock"
        if len(os.fsencode(self._socket)) > MAX_SOCKET_PATH:
            raise IpcNodeError(f"socket path too long for a Unix socket: {self._socket}")
        cmd = [
            self._python,
            "-m",
            "bridge.emulator.ipc_node",
            "--socket",
            str(self._socket),
            *scenario.argv(),
        ]
        if record is not None:
            cmd += ["--record", str(record)]
        self._launch(cmd, ready_timeout)
        return self

    def parse_report(self, data: Mapping[str, Any]) -> IpcReport:
        return IpcReport.from_json(data)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bridge.emulator.ipc_node``: parse options, serve, report."""
    parent_pid = os.getppid()  # before anything slow: the parent may already be dying
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        scenario = scenario_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    from bridge.emulator.ipc_runtime import run  # imports pycapnp
    from bridge.sources.ipc.schemas import load_schema_set

    return run(
        scenario,
        load_schema_set(scenario.version),
        Path(ns.socket),
        ns.record,
        ns.report,
        parent_pid if ns.exit_with_parent else None,
    )


if __name__ == "__main__":
    sys.exit(main())
