"""One attachment of the BPF program to one node process (a *session*).

This module and ``loaded_program`` are the only ones that touch BCC, which is untyped;
everything they hand out is typed. Attaching always goes through ``USDT(pid=...)``
because Bitcoin Core's tracepoints are semaphore-gated and BCC only raises the
semaphores when it knows the PID. The ``USDT`` object is kept for the whole session: if
it were garbage-collected, BCC would lower the semaphores and the probes would silently
stop firing. At the end it is retired, never destroyed (:func:`retire_usdt` says why),
and the semaphores are lowered by hand.

The compiled program outlives the session when a :class:`ProgramCache` is given (the
source keeps one), so a restarted node is traced within milliseconds of being found
rather than after a 1.7 s compile (``loaded_program`` says why that matters).

Ending a session is ordered so the ledger closes exactly: detach the probes (no more
hits), read the kernel counters, drain the rings to the end, and only then reset the
counters for the next session (or free the maps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from bridge.errors import BpfLoadError
from bridge.events.bpf_header import handler_name
from bridge.events.spec import EventSpec
from bridge.sources.usdt.loaded_program import KernelCounts, LoadedProgram
from bridge.sources.usdt.privileges import check_privileges
from bridge.sources.usdt.process import NodeProcess
from bridge.sources.usdt.program import ProgramOptions
from bridge.sources.usdt.ring import RingReader

log = logging.getLogger(__name__)

# BCC USDT contexts this process let go of but must never destroy (see
# UsdtSession._release_usdt); kept here so the reason they stay alive has a name.
_RETIRED_USDT_CONTEXTS: list[int] = []


def _import_bcc() -> Any:
    try:
        import bcc
    except ImportError:
        raise BpfLoadError(
            "the bcc module is not importable: install Debian's python3-bpfcc and run "
            "tracebridge from a venv created with --system-site-packages"
        ) from None
    return bcc


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


class ProgramCache:
    """Keeps the last session's compiled program for the next process (see the module
    docstring); owned by the source, closed when the bridge stops."""

    def __init__(self) -> None:
        self._program: LoadedProgram | None = None

    def take(self, usdt_text: str, specs: tuple[EventSpec, ...]) -> LoadedProgram | None:
        """The kept program if it serves this layout (it is then the caller's until
        :meth:`give_back`); a kept program that does not serve is freed."""
        program, self._program = self._program, None
        if program is not None and program.serves(usdt_text, specs):
            return program
        if program is not None:
            log.info("The node's probe layout changed (a new binary?); compiling anew.")
            program.close()
        return None

    def give_back(self, program: LoadedProgram) -> None:
        if self._program is not None:
            self._program.close()
        self._program = program

    def close(self) -> None:
        program, self._program = self._program, None
        if program is not None:
            program.close()


class UsdtSession:
    """The BPF program attached to ``node`` for ``specs``; use as a context manager.

    With ``programs``, a program compiled for an earlier process of the same binary is
    reused and handed back at :meth:`close`; without, the session compiles its own and
    frees it at :meth:`close`.
    """

    def __init__(
        self,
        node: NodeProcess,
        specs: tuple[EventSpec, ...],
        options: ProgramOptions,
        programs: ProgramCache | None = None,
    ):
        if not specs:
            raise BpfLoadError("no tracepoints to attach")
        check_privileges()
        bcc = _import_bcc()
        self.node = node
        self.specs = specs
        self.options = options
        self.compiled = False  # whether this session had to compile (not reuse)
        self.probes_live_boottime_s = 0.0  # CLOCK_BOOTTIME when the uprobes were attached
        self._programs = programs
        self._closed = False
        self._usdt: Any = None
        self._enabled: list[EventSpec] = []  # whose semaphores this session raised
        self._program: LoadedProgram | None = None
        self._events: list[Any] = []  # the uprobes this session attached
        try:
            self._attach(bcc)
        except BaseException:
            self._end_program()
            self._release_usdt()
            raise

    def _attach(self, bcc: Any) -> None:
        node, specs = self.node, self.specs
        try:
            self._usdt = bcc.USDT(pid=node.pid)
            for spec in specs:
                self._usdt.enable_probe(probe=spec.name, fn_name=handler_name(spec))
                self._enabled.append(spec)
            usdt_text = self._usdt.get_text()
        except Exception as error:  # BCC raises bare Exception
            raise BpfLoadError(f"cannot enable probes in pid {node.pid}: {error}") from None
        if self._programs is not None:
            self._program = self._programs.take(usdt_text, specs)
        if self._program is None:
            self._program = LoadedProgram(bcc, usdt_text, specs, self.options)
            self.compiled = True
        try:
            self._events = self._program.attach(self._usdt)
        except Exception as error:
            raise BpfLoadError(f"cannot attach the probes of pid {node.pid}: {error}") from None
        self.probes_live_boottime_s = time.clock_gettime(time.CLOCK_BOOTTIME)

    @property
    def rings(self) -> list[RingReader]:
        assert self._program is not None
        return self._program.rings

    def wait(self, timeout_s: float) -> None:
        """Sleep until a ring has data (adaptive wakeups) or the poll interval passes."""
        assert self._program is not None
        self._program.wait(timeout_s)

    def kernel_counts(self) -> dict[int, KernelCounts]:
        """Per tp_id, the BPF counters (a map read: call per heartbeat, not per event)."""
        assert self._program is not None
        return self._program.kernel_counts()

    def detach(self) -> None:
        """Stop the probes firing; the maps stay readable so the rings can be finished.
        A node that has exited fires nothing more, so its uprobes are removed in the
        background (:meth:`LoadedProgram.retire`) and its next process is not kept
        waiting."""
        events, self._events = self._events, []
        if self._program is None:
            return
        if self.node.alive():
            self._program.detach(events)
        else:
            self._program.retire(events)

    def close(self) -> None:
        """Detach, lower the node's semaphores if it is still running, and hand the
        program back for the next process (or free it)."""
        if self._closed:
            return
        self._closed = True
        self.detach()
        self._end_program()
        self._release_usdt()

    def _end_program(self) -> None:
        self.detach()
        program, self._program = self._program, None
        if program is None:
            return
        if self._programs is None:
            program.close()
            return
        try:
            program.reset_counters()
        except Exception:
            program.close()
            raise
        self._programs.give_back(program)

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
