"""Run real regtest nodes on loopback, each with its own datadir and free ports.

A :class:`RegtestNode` stops only what it started, and stops with its parent too: the
kernel sends it SIGTERM when the process that launched it dies (``PR_SET_PDEATHSIG``),
so a crashed test run leaves no node behind to be traced by mistake later.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bridge.localservice.ports import free_ports
from bridge.realnode.rpc import RpcClient, RpcError, RpcUnavailable

# Longest path a Unix socket may have (sun_path); bitcoin-node refuses longer ones.
SUN_PATH_MAX = 107
# RPC error "Loading block index..." etc. while the node starts.
RPC_IN_WARMUP = -28

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    os.setsid()  # a Ctrl-C meant for the test run reaches the node only through us


class NodeFailed(RuntimeError):
    """The node exited or never answered; the message carries its last log lines."""


class RegtestNode:
    """One ``bitcoind`` or ``bitcoin-node`` in regtest mode. Use as a context manager."""

    def __init__(
        self,
        binary: Path,
        datadir: Path,
        *,
        extra_args: Sequence[str] = (),
        ipc: bool = False,
        name: str = "node",
    ) -> None:
        self.binary = binary
        self.datadir = datadir
        self.extra_args = tuple(extra_args)
        self.ipc = ipc
        self.name = name
        self.p2p_port, self.rpc_port = free_ports(2)
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        datadir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    @property
    def chain_dir(self) -> Path:
        return self.datadir / "regtest"

    @property
    def debug_log(self) -> Path:
        return self.chain_dir / "debug.log"

    @property
    def pidfile(self) -> Path:
        return self.datadir / "node.pid"

    @property
    def ipc_socket(self) -> Path:
        """Where ``-ipcbind=unix`` puts the socket: ``<datadir>/regtest/node.sock``, or a
        short temporary directory when that path would not fit in ``sun_path``."""
        default = self.chain_dir / "node.sock"
        if len(str(default)) <= SUN_PATH_MAX:
            return default
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="tbnode-"))
        return self._socket_dir / "node.sock"

    @property
    def rpc(self) -> RpcClient:
        return RpcClient(self.rpc_port, self.chain_dir / ".cookie")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise NodeFailed(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def arguments(self) -> list[str]:
        args = [
            str(self.binary),
            "-regtest",
            f"-datadir={self.datadir}",
            "-server",
            "-listen",
            f"-port={self.p2p_port}",
            "-bind=127.0.0.1",
            f"-rpcport={self.rpc_port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-pid={self.pidfile}",
            "-fallbackfee=0.0001",
            "-printtoconsole=0",
            "-dnsseed=0",
            "-fixedseeds=0",
            "-listenonion=0",
            "-discover=0",
            "-natpmp=0",
        ]
        if self.ipc:
            default = self.chain_dir / "node.sock"
            args.append(
                "-ipcbind=unix"
                if self.ipc_socket == default
                else f"-ipcbind=unix:{self.ipc_socket}"
            )
        return [*args, *self.extra_args]

    # ------------------------------------------------------------------ lifecycle
    def start(self, *extra: str, wait: bool = True, timeout_s: float = 60.0) -> Self:
        """Launch the node; with ``wait``, return once RPC answers (and IPC listens)."""
        if self.running:
            raise NodeFailed(f"{self.name} is already running (pid {self.pid})")
        with contextlib.suppress(FileNotFoundError):
            (self.chain_dir / ".cookie").unlink()
        self._proc = subprocess.Popen(
            [*self.arguments(), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive("while starting")
            try:
                self.rpc.call("getblockcount")
                if not self.ipc or self.ipc_socket.exists():
                    return
            except RpcUnavailable:
                pass
            except RpcError as error:
                if error.code != RPC_IN_WARMUP:
                    raise
            if time.monotonic() > deadline:
                raise NodeFailed(
                    f"{self.name} did not answer RPC in {timeout_s:.0f} s" + self._log_tail()
                )
            time.sleep(0.05)

    def stop(self, timeout_s: float = 120.0) -> int:
        """Stop through RPC (a clean shutdown: the final flush fires), then wait."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            try:
                self.rpc.call("stop")
            except (RpcUnavailable, RpcError):
                proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self._reap()
        return code

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush (a crash)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()

    def _check_alive(self, doing: str) -> None:
        proc = self._proc
        if proc is None:
            raise NodeFailed(f"{self.name} is not running")
        code = proc.poll()
        if code is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            self._reap()
            raise NodeFailed(
                f"{self.name} exited with {code} {doing}: {err.strip()}" + self._log_tail()
            )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.debug_log.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return ""
        return "\n  debug.log: " + "\n  ".join(tail)

    # ------------------------------------------------------------------ helpers
    def call(self, method: str, *params: Any, wallet: str | None = None) -> Any:
        return self.rpc.call(method, *params, wallet=wallet)

    def connect_to(self, other: RegtestNode, timeout_s: float = 30.0) -> None:
        """Open an outbound (manual) connection to ``other`` and wait for the handshake."""
        before = {p["id"] for p in self.call("getpeerinfo")}
        self.call("addnode", f"127.0.0.1:{other.p2p_port}", "onetry")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            peers = [p for p in self.call("getpeerinfo") if p["id"] not in before]
            if any(p.get("version", 0) and p.get("synced_headers", -1) >= -1 for p in peers):
                return
            time.sleep(0.05)
        raise NodeFailed(f"{self.name} could not connect to {other.name}")

    def log_contains(self, text: str) -> bool:
        try:
            return text in self.debug_log.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running:
            try:
                self.stop(timeout_s=30.0)
            except Exception:
                self.kill()
        if self._socket_dir is not None:
            import shutil

            shutil.rmtree(self._socket_dir, ignore_errors=True)
