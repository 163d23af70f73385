"""One attachment of the BPF program to one node process (a *session*).

This is the only module that touches BCC, which is untyped; everything it hands out is
typed. Attaching always goes through ``USDT(pid=...)`` because Bitcoin Core's
tracepoints are semaphore-gated and BCC only raises the semaphores when it knows the
PID. The ``USDT`` object is kept for the whole session: if it were garbage-collected,
BCC would lower the semaphores and the probes would silently stop firing. At the end
it is retired, never destroyed (:func:`retire_usdt` says why), and the semaphores are
lowered by hand.

Ending a session is ordered so the ledger closes exactly: detach the probes (no more
hits), read the kernel counters, drain the rings to the end, and only then free the
maps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bridge.errors import BpfLoadError
from bridge.events.bpf_header import handler_name
from bridge.events.catalog import SUBSYSTEMS
from bridge.events.spec import EventSpec
from bridge.sources.usdt.process import NodeProcess
from bridge.sources.usdt.program import ProgramOptions, compile_flags, program_text
from bridge.sources.usdt.ring import RingReader

log = logging.getLogger(__name__)

# BCC USDT contexts this process let go of but must never destroy (see
# UsdtSession._release_usdt); kept here so the reason they stay alive has a name.
_RETIRED_USDT_CONTEXTS: list[int] = []


@dataclass(frozen=True)
class KernelCounts:
    """The BPF side of one tracepoint's ledger."""

    fired: int  # probe hits while attached; equals the last seq handed out
    lost: int  # ring-full losses
    pending: int  # losses not yet reported in any record's lost_before


def _import_bcc() -> Any:
    try:
        import bcc
    except ImportError:
        raise BpfLoadError(
            "the bcc module is not importable: install Debian's python3-bpfcc and run "
            "tracebridge from a venv created with --system-site-packages"
        ) from None
    return bcc


def check_privileges() -> None:
    """Fail early with a clear message instead of BCC's 'Permission denied'."""
    if os.geteuid() != 0:
        raise BpfLoadError(
            "USDT tracing loads eBPF programs: run as root, or grant CAP_BPF, CAP_PERFMON "
            "and CAP_SYS_RESOURCE (see deploy/)"
        )


@contextlib.contextmanager
def _capture_stderr() -> Iterator[list[str]]:
    """BCC prints compiler errors on fd 2 from C++; collect them for the error message."""
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.extend(line.rstrip() for line in sink if line.strip())


def _addsem_call() -> Any:
    """BCC's ``bcc_usdt_addsem_fully_specified_probe``, typed (its Python module leaves
    it undeclared, and an undeclared pointer argument would be cut to 32 bits)."""
    import ctypes

    function = _import_bcc().libbcc.lib.bcc_usdt_addsem_fully_specified_probe
    # (context, provider, probe, handler function name, delta), as in BCC's usdt.cc
    function.argtypes = [ctypes.c_void_p, *[ctypes.c_char_p] * 3, ctypes.c_int16]
    function.restype = ctypes.c_int
    return function


def retire_usdt(usdt: Any, probes: Iterable[tuple[str, str]], *, lower: bool) -> list[str]:
    """Let go of a ``bcc.USDT`` built with a pid without ever destroying its context;
    first, if ``lower``, take back the semaphore raise of each ``(probe, handler)``.
    Returns the probes whose semaphore could not be lowered.

    Why not just drop it: BCC 0.26 (Debian 12) builds a pid context with a copy of an
    object that owns ``/proc/<pid>/root``. The original closes that descriptor at once;
    the copy keeps its number and closes it again when the context is destroyed. By
    then the number belongs to someone else in this process (a Kafka socket, pycapnp's
    descriptors: kj aborted the demo at exit). So the context stays allocated for the
    life of the process (about 40 kB per node process attached, measured against the
    emulated node), and its one useful teardown step, lowering the semaphores, is done
    here through BCC's public call. ``lower`` must be False once the node has
    exited: its pid may already name another process.
    """
    context = usdt.context
    usdt.context = None  # USDT.__del__ now hands BCC a NULL, which it ignores
    if context is None:
        return []
    _RETIRED_USDT_CONTEXTS.append(context)
    if not lower:
        return []
    add_to_semaphore = _addsem_call()
    failed = []
    for name, handler in probes:
        provider, probe = name.split(":", 1)
        if add_to_semaphore(context, provider.encode(), probe.encode(), handler.encode(), -1):
            failed.append(name)
    return failed


class UsdtSession:
    """The BPF program attached to ``node`` for ``specs``; use as a context manager."""

    def __init__(self, node: NodeProcess, specs: tuple[EventSpec, ...], options: ProgramOptions):
        if not specs:
            raise BpfLoadError("no tracepoints to attach")
        check_privileges()
        bcc = _import_bcc()
        self.node = node
        self.specs = specs
        self.options = options
        self._detached = False
        self._usdt: Any = None
        self._enabled: list[EventSpec] = []  # whose semaphores this session raised
        self._bpf: Any = None
        try:
            self._attach(bcc)
        except BaseException:
            if self._bpf is not None:
                self._bpf.cleanup()
            self._release_usdt()
            raise

    def _attach(self, bcc: Any) -> None:
        node, specs, options = self.node, self.specs, self.options
        try:
            self._usdt = bcc.USDT(pid=node.pid)
            for spec in specs:
                self._usdt.enable_probe(probe=spec.name, fn_name=handler_name(spec))
                self._enabled.append(spec)
        except Exception as error:  # BCC raises bare Exception
            raise BpfLoadError(f"cannot enable probes in pid {node.pid}: {error}") from None
        with _capture_stderr() as compiler_output:
            try:
                self._bpf = bcc.BPF(
                    text=program_text(),
                    usdt_contexts=[self._usdt],
                    cflags=compile_flags(specs, options),
                )
            except Exception as error:
                failure: Exception | None = error
            else:
                failure = None
        if failure is not None:
            detail = "\n".join(line for line in compiler_output if "warning" not in line)[-3000:]
            raise BpfLoadError(f"BCC could not load the BPF program: {failure}\n{detail}")
        subsystems = sorted({spec.subsystem for spec in specs}, key=SUBSYSTEMS.index)
        self.rings = [
            RingReader(
                f"tb_ring_{subsystem}",
                self._bpf[f"tb_ring_{subsystem}"].map_fd,
                options.ring_kib[subsystem] * 1024,
            )
            for subsystem in subsystems
        ]
        self._counters = self._bpf["tb_counters"]
        self._poller = select.epoll()
        for ring in self.rings:
            self._poller.register(ring.fileno(), select.EPOLLIN)

    def wait(self, timeout_s: float) -> None:
        """Sleep until a ring has data (adaptive wakeups) or the poll interval passes."""
        self._poller.poll(timeout_s)

    def kernel_counts(self) -> dict[int, KernelCounts]:
        """Per tp_id, the BPF counters (a map read: call per heartbeat, not per event)."""
        out = {}
        for spec in self.specs:
            value = self._counters[self._counters.Key(spec.tp_id)]
            out[spec.tp_id] = KernelCounts(int(value.fired), int(value.lost), int(value.pending))
        return out

    def detach(self) -> None:
        """Stop the probes firing; the maps stay readable so the rings can be finished."""
        if self._detached:
            return
        self._detached = True
        for event in list(self._bpf.uprobe_fds):
            try:
                self._bpf.detach_uprobe_event(event)
            except Exception as error:  # e.g. tracefs not mounted; the close below still frees it
                log.warning("Could not detach uprobe %s cleanly: %s.", event, error)

    def close(self) -> None:
        """Free everything. Lowers the node's semaphores if it is still running."""
        self.detach()
        self._poller.close()
        for ring in self.rings:
            ring.close()
        self._bpf.cleanup()
        self._release_usdt()

    def _release_usdt(self) -> None:
        """Lower the semaphores this session raised and retire BCC's context."""
        usdt, self._usdt = self._usdt, None
        if usdt is None:
            return
        probes = [(spec.name, handler_name(spec)) for spec in self._enabled]
        for name in retire_usdt(usdt, probes, lower=self.node.alive()):
            log.warning(
                "Could not lower the semaphore of %s in pid %d: the node keeps preparing "
                "its arguments until it restarts.",
                name,
                self.node.pid,
            )

    def __enter__(self) -> UsdtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
