"""The USDT source: find the node process, attach, and find it again after a restart.

A node is found by ``--pid`` (first attachment only; afterwards by the binary that PID
was running and the same arguments, since a restarted node has a new PID), by
``--pidfile`` (re-read every time), or by ``--binary`` (the oldest process executing
it; with several, ``--pidfile`` is the way to choose).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from bridge.codec import _native
from bridge.codec.native import configure
from bridge.codec.single_object import SchemaStore
from bridge.config import UsdtSourceConfig
from bridge.errors import BpfLoadError, NodeNotFoundError
from bridge.events.envelope import SourceKind
from bridge.events.spec import EventSpec
from bridge.ledger import SourceCounts, Stream
from bridge.sources.usdt.elf_notes import read_usdt_probes
from bridge.sources.usdt.privileges import check_privileges
from bridge.sources.usdt.process import (
    NodeProcess,
    process_by_binary,
    process_by_pid,
    process_by_pidfile,
    processes_by_binary,
)
from bridge.sources.usdt.program import ProgramOptions
from bridge.sources.usdt.selection import select_events, split_by_presence
from bridge.sources.usdt.session import ProgramCache, UsdtSession

log = logging.getLogger(__name__)

# How often to look for the node while waiting for it (only between sessions): a
# restarted node fires from its first instant, and what fires before the probes are
# live is unobservable, so it is looked for often. A pidfile read costs ~4 us; a scan of
# /proc for --binary ~0.5 ms per 100 processes, hence its longer interval.
LOCATE_INTERVAL_S = 0.02
SCAN_INTERVAL_S = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class UsdtSourceSession:
    """A :class:`~bridge.sources.base.SourceSession` over one BPF attachment: one stream
    per tracepoint, numbered by the BPF program itself (sequence id = tp_id)."""

    kind = SourceKind.USDT
    source_thread_cpu_s = 0.0  # BPF runs in the node's threads; draining is the bridge's

    def __init__(
        self,
        node: NodeProcess,
        specs: tuple[EventSpec, ...],
        options: ProgramOptions,
        programs: ProgramCache | None = None,
        on_closed: Callable[[UsdtSourceSession], None] | None = None,
    ):
        self.session_id = str(uuid.uuid4())
        self.record_types = specs
        self.streams = tuple(Stream(spec.tp_id, spec.name, (spec.tp_id,)) for spec in specs)
        self.node = node
        self.node_pid: int | None = node.pid
        self.node_endpoint: str | None = str(node.exe)
        self._bpf = UsdtSession(node, specs, options, programs)
        self.compiled = self._bpf.compiled
        # The node's blind start: from its exec to the probes being live, nothing it
        # fired could be seen. /proc's start time has clock-tick (10 ms) resolution.
        started_s = node.start_ticks / CLOCK_TICKS
        self.attach_delay_ns: int | None = max(
            0, int((self._bpf.probes_live_boottime_s - started_s) * 1e9)
        )
        self._final_counts: dict[int, SourceCounts] | None = None
        self._on_closed = on_closed
        self._closed = False

    def configure(self, encoder: _native.Encoder, store: SchemaStore) -> None:
        configure(encoder, self.record_types, store)

    def alive(self) -> bool:
        return self.node.alive()

    def wait(self, timeout_s: float) -> None:
        self._bpf.wait(timeout_s)

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected]]:
        good: list[_native.Encoded] = []
        dead: list[_native.Rejected] = []
        for ring in self._bpf.rings:
            ring_good, ring_dead, _ = ring.drain(encoder, max_records)
            good.extend(ring_good)
            dead.extend(ring_dead)
        return good, dead

    def stop(self) -> None:
        """Detach the probes, then freeze the counters: from here on nothing can fire."""
        self._bpf.detach()
        self._final_counts = self._read_counts()

    def source_counts(self) -> dict[int, SourceCounts]:
        return self._final_counts if self._final_counts is not None else self._read_counts()

    def _read_counts(self) -> dict[int, SourceCounts]:
        return {
            tp_id: SourceCounts(fired=c.fired, lost_kernel=c.lost)
            for tp_id, c in self._bpf.kernel_counts().items()
        }

    def pending_bytes(self) -> int:
        return sum(ring.pending_bytes() for ring in self._bpf.rings)

    def ring_fill(self) -> list[tuple[str, int, int]]:
        """Per ring (subsystem): bytes not yet drained and its size, for the metrics."""
        return [
            (ring.name.removeprefix("tb_ring_"), ring.pending_bytes(), ring.size)
            for ring in self._bpf.rings
        ]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bpf.close()
        if self._on_closed is not None:
            self._on_closed(self)


class UsdtSource:
    """Opens one :class:`UsdtSourceSession` per node process."""

    def __init__(self, config: UsdtSourceConfig) -> None:
        if config.pid is None and config.pidfile is None and config.binary is None:
            raise NodeNotFoundError("say which node to trace: --pid, --pidfile or --binary")
        # Before Kafka is set up, and before the node is looked for: without
        # CAP_SYS_PTRACE another user's node would merely seem not to exist.
        check_privileges()
        self.config = config
        self.reattach = config.reattach
        self.poll_interval_s = config.poll_interval_ms / 1000
        self.max_batch = config.max_batch
        self.selected = tuple(select_events(config.tracepoints))
        self.options = ProgramOptions(
            ring_kib=dict(config.ring_buffer_kib),
            payload_cap=config.payload_capture_bytes,
            wakeup=config.wakeup,
        )
        self._binary: Path | None = config.binary
        self._arguments: tuple[str, ...] | None = None  # set when --pid named the node
        self._first = True
        self._warned_ambiguous: set[int] = set()
        self._reported_missing: set[str] = set()
        self._reported_untraceable: set[Path] = set()
        self._last_node: NodeProcess | None = None
        self._programs = ProgramCache()
        # The search for the node's next process, started as soon as a session whose
        # node exited is closed (see _session_closed).
        self._early: threading.Thread | None = None
        self._early_stop = threading.Event()
        self._early_result: UsdtSourceSession | BaseException | None = None
        self._closing = False

    def _locate(self) -> NodeProcess | None:
        if self.config.pidfile is not None:
            return process_by_pidfile(self.config.pidfile)
        if self._first and self.config.pid is not None:
            node = process_by_pid(self.config.pid)
            if node is None:
                raise NodeNotFoundError(f"no running process has pid {self.config.pid}")
            self._binary = node.exe
            self._arguments = node.arguments
            return node
        assert self._binary is not None
        if self._arguments is not None:
            return process_by_binary(self._binary, self._arguments)
        candidates = processes_by_binary(self._binary)
        if len(candidates) > 1 and candidates[0].pid not in self._warned_ambiguous:
            self._warned_ambiguous.add(candidates[0].pid)
            log.warning(
                "%d processes run %s (pids %s); tracing the oldest. Use --pidfile to choose.",
                len(candidates),
                self._binary,
                ", ".join(str(c.pid) for c in candidates),
            )
        return candidates[0] if candidates else None

    def next_session(self, stop: threading.Event) -> UsdtSourceSession | None:
        early = self._early
        if early is not None:
            while early.is_alive():
                if stop.is_set():
                    self._early_stop.set()
                early.join(0.05)
            self._early = None
            result, self._early_result = self._early_result, None
            if isinstance(result, BaseException):
                raise result
            if result is not None and stop.is_set():
                result.close()
                return None
            if result is not None or stop.is_set():
                return result
        return self._search(stop)

    def _session_closed(self, session: UsdtSourceSession) -> None:
        """Start looking for the node's next process now, not when the bridge asks.

        A session is closed as soon as its last record is drained; the bridge then
        settles its books with Kafka, which takes milliseconds, or minutes when the
        broker is down. A restarted node makes its first connections in its first
        second, so its probes must go live before that, whatever Kafka does. Its
        events wait in the rings (the bridge drains them once the new session runs);
        a ring that fills meanwhile counts its losses like any other.
        """
        if self._closing or not self.reattach or session.node.alive() or self._early:
            return
        self._early_stop.clear()
        self._early = threading.Thread(target=self._search_early, name="usdt-attach", daemon=True)
        self._early.start()

    def _search_early(self) -> None:
        try:
            self._early_result = self._search(self._early_stop)
        except BaseException as error:  # handed to next_session, raised there
            self._early_result = error

    def _search(self, stop: threading.Event) -> UsdtSourceSession | None:
        waiting_logged = False
        while not stop.is_set():
            node = self._locate()
            self._first = False
            if node is not None and node != self._last_node:
                session = self._open(node)
                if session is not None:
                    return session
            if not waiting_logged:
                log.info("Waiting for the node (%s).", self._describe_target())
                waiting_logged = True
            scanning = self.config.pidfile is None
            stop.wait(SCAN_INTERVAL_S if scanning else LOCATE_INTERVAL_S)
        return None

    def close(self) -> None:
        """Stop any early search, close what it opened, free the kept program."""
        self._closing = True
        early = self._early
        if early is not None:
            self._early_stop.set()
            early.join()
            self._early = None
            result, self._early_result = self._early_result, None
            if isinstance(result, UsdtSourceSession):
                result.close()
        self._programs.close()

    def _open(self, node: NodeProcess) -> UsdtSourceSession | None:
        self._last_node = node
        probes = {
            f"{probe.provider}:{probe.name}"
            for probe in read_usdt_probes(Path(f"/proc/{node.pid}/exe"))
        }
        if not probes:
            self._no_tracepoints(node)
            return None
        available = split_by_presence(self.selected, probes)
        if not available.present:
            why = (
                f"process {node.pid} ({node.exe}) has none of the selected tracepoints "
                f"({', '.join(spec.name for spec in self.selected)})"
            )
            if self.config.pid is not None and node.pid == self.config.pid:
                raise NodeNotFoundError(why)
            log.error("%s; waiting for another process.", why[0].upper() + why[1:])
            return None
        for spec in available.missing:
            if spec.name not in self._reported_missing:
                self._reported_missing.add(spec.name)
                log.warning(
                    "Tracepoint %s is not in %s; skipping it (a build without it, e.g. "
                    "without the wallet).",
                    spec.name,
                    node.exe,
                )
        try:
            session = UsdtSourceSession(
                node, available.present, self.options, self._programs, self._session_closed
            )
        except BpfLoadError:
            if node.alive():
                raise
            log.warning("Pid %d exited while attaching; waiting for the next process.", node.pid)
            return None
        log.info(
            "Attached to pid %d (%s): %d tracepoints, session %s; probes live %.0f ms "
            "after the node started (%s).",
            node.pid,
            node.exe,
            len(available.present),
            session.session_id,
            (session.attach_delay_ns or 0) / 1e6,
            "compiled the program" if session.compiled else "reused the compiled program",
        )
        return session

    def _no_tracepoints(self, node: NodeProcess) -> None:
        """A binary without USDT notes: say so once. A pid the user named will never
        grow probes, so that is fatal; a pidfile or binary may later name a traceable
        process (a rebuilt node), so the bridge waits for one."""
        why = (
            f"process {node.pid} ({node.exe}) has no USDT tracepoints: it was built "
            "without -DWITH_USDT=ON (or is not a Bitcoin Core node)"
        )
        if self.config.pid is not None and node.pid == self.config.pid:
            raise NodeNotFoundError(why)
        if node.exe not in self._reported_untraceable:
            self._reported_untraceable.add(node.exe)
            log.error("%s; waiting for a process that has them.", why[0].upper() + why[1:])

    def _describe_target(self) -> str:
        if self.config.pidfile is not None:
            return f"pidfile {self.config.pidfile}"
        return f"a process running {self._binary}"
