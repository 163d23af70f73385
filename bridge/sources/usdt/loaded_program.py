"""The BPF program, compiled and loaded once, reused for every process of the same binary.

Compiling the program with BCC's clang takes about 1.7 s on this machine class; every
other step of attaching (reading the probes, raising the semaphores, attaching the
uprobes) takes milliseconds. A node that restarts fires events from its first instant
(its peers reconnect, version and verack go out), and a session that compiles again
sees none of them. So the program is compiled for the probe *layout* of a binary (BCC's
generated argument readers: which register or stack slot holds each argument) and kept
loaded between sessions; a new process of the same binary gets the same readers, so
only its uprobes are attached. A binary whose layout differs (an upgrade) gets a new
program.

Between sessions nothing is attached, the rings have been drained to the end, and the
per-tracepoint counters are zeroed, so a reused program starts every session at seq 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bridge.errors import BpfLoadError
from bridge.events.catalog import SUBSYSTEMS
from bridge.events.spec import EventSpec
from bridge.sources.usdt.program import ProgramOptions, compile_flags, program_text
from bridge.sources.usdt.ring import RingReader

log = logging.getLogger(__name__)

#: The longest tracefs event name the kernel accepts (MAX_EVENT_NAME_LEN), less the
#: ``_bcc_<tracer pid>`` BCC appends to the name it is given.
UPROBE_NAME_BUDGET = 64 - len("_bcc_") - len("4194304")


def uprobe_event_name(prefix: bytes, path: bytes, addr: int, pid: int) -> bytes:
    """A uprobe's name that fits tracefs whatever the binary's path.

    BCC names a uprobe after the binary's full path (``p__opt_bitcoin_31_0_bin_
    bitcoind_0x1b2c3d_4242_bcc_977``). As root the name is only a key, since the
    uprobe comes from the perf PMU; without CAP_SYS_ADMIN, BCC registers it in tracefs,
    whose names stop at 64 bytes, so a node unpacked where releases unpack
    (``~/bitcoin-31.0/bin/bitcoind``) could not be traced by an unprivileged bridge
    (EINVAL). A digest of the path keeps names distinct per binary, and the address
    and pid per probe and process, as BCC's own name does.
    """
    digest = hashlib.blake2s(path, digest_size=4).hexdigest().encode()
    return b"%s_tb_%s_0x%x_%d" % (prefix, digest, addr, pid)


@dataclass(frozen=True)
class KernelCounts:
    """The BPF side of one tracepoint's ledger."""

    fired: int  # probe hits while attached; equals the last seq handed out
    lost: int  # ring-full losses
    pending: int  # losses not yet reported in any record's lost_before


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


class LoadedProgram:
    """The program for one probe layout: its maps, rings and loaded handlers."""

    def __init__(
        self,
        bcc: Any,
        usdt_text: str,
        specs: tuple[EventSpec, ...],
        options: ProgramOptions,
    ) -> None:
        self.usdt_text = usdt_text
        self.specs = specs
        self.options = options
        self.compile_s = 0.0
        self.rings: list[RingReader] = []
        self._reapers: list[threading.Thread] = []
        self._retired: list[Any] = []  # uprobes of exited processes, not yet removed
        started = time.monotonic()
        with _capture_stderr() as compiler_output:
            try:
                # The argument readers BCC generated for the node go first, exactly as
                # BPF(usdt_contexts=...) would put them; nothing is attached yet.
                self.bpf: Any = bcc.BPF(
                    text=usdt_text + program_text(), cflags=compile_flags(specs, options)
                )
                # BCC attaches and detaches by this name (see uprobe_event_name).
                self.bpf._get_uprobe_evname = uprobe_event_name
            except Exception as error:  # BCC raises bare Exception
                failure: Exception | None = error
            else:
                failure = None
        if failure is not None:
            detail = "\n".join(line for line in compiler_output if "warning" not in line)[-3000:]
            raise BpfLoadError(f"BCC could not load the BPF program: {failure}\n{detail}")
        try:
            self._map_rings()
        except BaseException:
            self.close()
            raise
        self.compile_s = time.monotonic() - started

    def _map_rings(self) -> None:
        subsystems = sorted({spec.subsystem for spec in self.specs}, key=SUBSYSTEMS.index)
        for subsystem in subsystems:
            self.rings.append(
                RingReader(
                    f"tb_ring_{subsystem}",
                    self.bpf[f"tb_ring_{subsystem}"].map_fd,
                    self.options.ring_kib[subsystem] * 1024,
                )
            )
        self._counters = self.bpf["tb_counters"]
        self._poller = select.epoll()
        for ring in self.rings:
            self._poller.register(ring.fileno(), select.EPOLLIN)

    def serves(self, usdt_text: str, specs: tuple[EventSpec, ...]) -> bool:
        """Whether a process whose probes BCC describes as ``usdt_text`` can use this
        program as it is: same argument readers, same handlers."""
        return usdt_text == self.usdt_text and specs == self.specs

    def attach(self, usdt: Any) -> list[Any]:
        """Attach the handlers to every probe location ``usdt`` (a pid context whose
        probes are enabled) names; returns the uprobe events attached (BCC's names,
        which carry the pid), for :meth:`detach`."""
        before = set(self.bpf.uprobe_fds)
        try:
            for binpath, fn_name, addr, pid in usdt.enumerate_active_probes():
                self.bpf.attach_uprobe(name=binpath, fn_name=fn_name, addr=addr, pid=pid)
        except BaseException:
            self.detach([event for event in self.bpf.uprobe_fds if event not in before])
            raise
        finally:
            self._reap_retired()
        return [event for event in self.bpf.uprobe_fds if event not in before]

    def detach(self, events: list[Any] | None = None) -> None:
        """Stop ``events`` (default: every attached uprobe) firing; the maps stay
        readable so the rings can be finished.

        In parallel: the kernel removes a uprobe only after a grace period, about 80 ms
        each on this machine class, partly serialised (20 take 1.6 s in parallel, 2.1 s
        one after another). BCC's calls release the GIL, so what can overlap does.
        """
        events = list(self.bpf.uprobe_fds) if events is None else events
        if not events:
            return
        with ThreadPoolExecutor(max_workers=len(events)) as pool:
            for event, error in zip(events, pool.map(self._detach_one, events), strict=True):
                if error is not None:  # e.g. tracefs not mounted; cleanup still frees it
                    log.warning("Could not detach uprobe %s cleanly: %s.", event, error)

    def retire(self, events: list[Any]) -> None:
        """Remove the uprobes of a process that has exited, later.

        They cannot fire any more: a uprobe with a pid is bound to that task, not to
        the number, so even a new process given the same pid is not traced by them.
        Their removal is slow (see :meth:`detach`) and holds a kernel lock that
        attaching waits for: done now, it would keep the node's *next* process
        untraced for up to two seconds after its exec, while it makes its first
        connections. So they are removed in the background once the next process is
        attached (:meth:`attach`), or at :meth:`close`.
        """
        self._retired.extend(events)

    def _reap_retired(self) -> None:
        events, self._retired = self._retired, []
        if not events:
            return
        reaper = threading.Thread(
            target=self.detach, args=(events,), name="uprobe-reaper", daemon=True
        )
        self._reapers.append(reaper)
        reaper.start()

    def _detach_one(self, event: Any) -> Exception | None:
        try:
            self.bpf.detach_uprobe_event(event)
        except Exception as error:  # BCC raises bare Exception
            return error
        return None

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

    def reset_counters(self) -> None:
        """Zero every tracepoint's counters for the next session (seq from 1 again).
        Only with nothing live attached (detached, or retired with their process): a
        hit in between would be numbered twice."""
        zero = self._counters.Leaf()
        for spec in self.specs:
            self._counters[self._counters.Key(spec.tp_id)] = zero

    def close(self) -> None:
        """Free the maps and programs (after :meth:`detach` and a final drain)."""
        for reaper in self._reapers:
            reaper.join()
        self._retired = []
        self.detach()
        poller = getattr(self, "_poller", None)
        if poller is not None:
            poller.close()
        for ring in self.rings:
            ring.close()
        self.bpf.cleanup()
