"""The lifecycle both emulated nodes share: launch, READY, go, wait, stop, clean up.

Why one class: the USDT node (a C binary) and the IPC node (a Python module) are run
the same way by tests, benchmarks and the demo, and a test must never leak a node.
Each runs in its own session (a Ctrl-C meant for pytest does not also stop it, and
``close`` can kill the whole group), prints ``READY pid=<pid>`` on stdout once a
tracer or client may attach, starts on SIGUSR1 when told to wait, ends on SIGTERM,
and writes a JSON report that its subclass parses.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

Report = TypeVar("Report")


class EmulatorProcess(Generic[Report]):
    """One emulated node process; subclasses say what it is called and how to read its
    report. Usable as a context manager: leaving the block, or any failure inside
    ``start``, kills a process that still runs."""

    #: How errors name the process ("emulator", "node").
    noun: ClassVar[str] = "emulator"
    #: The error raised for a failed start or run, and for ``wait`` running out of time
    #: (the process is then still running: ``stop`` it).
    error: ClassVar[type[RuntimeError]] = RuntimeError
    timeout_error: ClassVar[type[RuntimeError]] = RuntimeError

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._report: Report | None = None

    # ------------------------------------------------------------------ subclass hooks
    def parse_report(self, data: Mapping[str, Any]) -> Report:
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int:
        """The process id (what ``USDT(pid=...)`` takes)."""
        return self._require_proc().pid

    @property
    def running(self) -> bool:
        """Whether the process has been started and has not exited yet."""
        return self._proc is not None and self._proc.poll() is None

    def _make_workdir(self, prefix: str) -> Path:
        """The scratch directory (report, stderr); refuses a second start."""
        if self._proc is not None or self._workdir is not None:
            raise self.error(f"this {type(self).__name__} was already started; use a new one")
        self._workdir = Path(tempfile.mkdtemp(prefix=prefix))
        return self._workdir

    def _launch(self, cmd: Sequence[str], ready_timeout: float) -> None:
        """Start ``cmd`` (plus ``--report`` and ``--exit-with-parent``: the node runs in
        its own session, so if this process dies, nothing else would stop it) and return
        once it printed its READY line."""
        assert self._workdir is not None, "_make_workdir first"
        argv = [*cmd, "--exit-with-parent", "--report", str(self._workdir / "report.json")]
        try:
            with (self._workdir / "stderr.txt").open("wb") as err:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                )
            self._await_ready(ready_timeout)
        except BaseException:
            self.close()
            raise

    def go(self) -> None:
        """Send SIGUSR1: a node started with ``wait_start`` begins."""
        proc = self._require_proc()
        if proc.poll() is not None:
            raise self.error(f"{self.noun} exited (code {proc.returncode}) before go()")
        proc.send_signal(signal.SIGUSR1)

    def wait(self, timeout: float | None = None) -> Report:
        """Wait for the run to end and return its report."""
        if self._report is not None:
            return self._report
        proc = self._require_proc()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise self.timeout_error(
                f"{self.noun} pid {proc.pid} still running after {timeout}s"
            ) from exc
        self._close_stdout()
        if proc.returncode != 0:
            raise self.error(f"{self.noun} exited with code {proc.returncode}: {self.stderr()}")
        assert self._workdir is not None
        try:
            data = json.loads((self._workdir / "report.json").read_text(encoding="utf-8"))
            self._report = self.parse_report(data)
        except (OSError, ValueError) as exc:
            raise self.error(f"{self.noun} report unreadable: {exc}; {self.stderr()}") from exc
        return self._report

    def stop(self, timeout: float = 15.0) -> Report:
        """End the run with SIGTERM (the node stops, flushes, reports) and report."""
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
        """What the process wrote on stderr so far."""
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

    # ------------------------------------------------------------------ internals
    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise self.error(f"the {self.noun} has not been started")
        return self._proc

    def _close_stdout(self) -> None:
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def _await_ready(self, timeout: float) -> None:
        """Read stdout until ``READY pid=<pid>``; the node writes nothing else there."""
        proc = self._require_proc()
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.error(f"{self.noun} printed no READY line within {timeout}s")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = proc.wait()
                raise self.error(f"{self.noun} exited (code {code}) before READY: {self.stderr()}")
            buf += chunk
        line = buf.split(b"\n", 1)[0].decode(errors="replace").strip()
        if line != f"READY pid={proc.pid}":
            raise self.error(f"unexpected first line from the {self.noun}: {line!r}")
