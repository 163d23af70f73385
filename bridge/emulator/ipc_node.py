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

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from bridge.emulator.ipc_report import IpcReport
from bridge.emulator.ipc_scenario import IpcScenario, build_parser, scenario_from_args

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


class IpcNode:
    """A running emulated IPC node process, usable as a context manager.

    ``start`` launches it in its own session and returns once it printed
    ``READY pid=<pid>`` (the socket listens). ``go`` sends SIGUSR1 (needed with
    ``wait_start``), ``wait`` returns the report when the run ends, ``stop`` ends it
    with SIGTERM and returns the report. Leaving the ``with`` block, or a failure in
    ``start``, kills a process that still runs, so none outlives its test.
    """

    def __init__(self, python: str | None = None) -> None:
        self._python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._socket: Path | None = None
        self._report: IpcReport | None = None

    @property
    def socket(self) -> Path:
        """The Unix socket the node listens on."""
        if self._socket is None:
            raise IpcNodeError("the node has not been started")
        return self._socket

    @property
    def pid(self) -> int:
        return self._require_proc().pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(
        self,
        scenario: IpcScenario | None = None,
        record: Path | None = None,
        *,
        socket: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> Self:
        """Launch the node and wait for its READY line; returns ``self``."""
        if self._proc is not None:
            raise IpcNodeError("this IpcNode was already started; use a new one")
        scenario = scenario if scenario is not None else IpcScenario()
        self._workdir = Path(tempfile.mkdtemp(prefix="ipc_node-"))
        self._socket = socket if socket is not None else self._workdir / "node.sock"
        if len(os.fsencode(self._socket)) > MAX_SOCKET_PATH:
            raise IpcNodeError(f"socket path too long for a Unix socket: {self._socket}")
        cmd = [
            self._python,
            "-m",
            "bridge.emulator.ipc_node",
            "--socket",
            str(self._socket),
            *scenario.argv(),
            "--report",
            str(self._workdir / "report.json"),
        ]
        if record is not None:
            cmd += ["--record", str(record)]
        try:
            with (self._workdir / "stderr.txt").open("wb") as err:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                )
            self._await_ready(ready_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def go(self) -> None:
        """Send SIGUSR1: a node started with ``wait_start`` starts its streams."""
        proc = self._require_proc()
        if proc.poll() is not None:
            raise IpcNodeError(f"node exited (code {proc.returncode}) before go()")
        proc.send_signal(signal.SIGUSR1)

    def wait(self, timeout: float | None = None) -> IpcReport:
        """Wait for the run to end and return its report (IpcNodeTimeout if it does not)."""
        if self._report is not None:
            return self._report
        proc = self._require_proc()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise IpcNodeTimeout(f"node pid {proc.pid} still running after {timeout}s") from exc
        self._close_stdout()
        if proc.returncode != 0:
            raise IpcNodeError(f"node exited with code {proc.returncode}: {self.stderr()}")
        assert self._workdir is not None
        try:
            data = json.loads((self._workdir / "report.json").read_text(encoding="utf-8"))
            self._report = IpcReport.from_json(data)
        except (OSError, ValueError) as exc:
            raise IpcNodeError(f"node report unreadable: {exc}; {self.stderr()}") from exc
        return self._report

    def stop(self, timeout: float = 15.0) -> IpcReport:
        """SIGTERM: the node unsubscribes everyone, closes, reports."""
        proc = self._require_proc()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self) -> None:
        """Kill the process if it still runs and remove the scratch directory."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._close_stdout()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def stderr(self) -> str:
        """What the node wrote on stderr so far."""
        if self._workdir is None:
            return ""
        try:
            text = (self._workdir / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text.strip() or "(no stderr)"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise IpcNodeError("the node has not been started")
        return self._proc

    def _close_stdout(self) -> None:
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def _await_ready(self, timeout: float) -> None:
        proc = self._require_proc()
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise IpcNodeError(f"node printed no READY line within {timeout}s")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = proc.wait()
                raise IpcNodeError(f"node exited (code {code}) before READY: {self.stderr()}")
            buf += chunk
        line = buf.split(b"\n", 1)[0].decode(errors="replace").strip()
        if line != f"READY pid={proc.pid}":
            raise IpcNodeError(f"unexpected first line from the node: {line!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bridge.emulator.ipc_node``: parse options, serve, report."""
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
    )


if __name__ == "__main__":
    sys.exit(main())
