"""The BPF attachment's own promises, on a real process with real USDT probes.

Closing a session must leave the node as it found it (every semaphore back to 0, so an
untraced node pays nothing) and must not touch any file descriptor the session does
not own: the bridge shares its process with Kafka sockets and Cap'n Proto streams.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import UsdtSourceConfig
from bridge.emulator import UsdtNode, UsdtScenario, build_usdt_node
from bridge.events.catalog import EVENTS
from bridge.sources.usdt.process import NodeProcess, process_by_pid
from bridge.sources.usdt.program import ProgramOptions
from bridge.sources.usdt.session import ProgramCache, UsdtSession

pytestmark = pytest.mark.bpf

# Enough spare descriptors to cover every number BCC used and gave back.
FD_HEADROOM = 64


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_usdt_node()


def options() -> ProgramOptions:
    config = UsdtSourceConfig(pid=1)
    return ProgramOptions(
        ring_kib=dict(config.ring_buffer_kib),
        payload_cap=config.payload_capture_bytes,
        wakeup=config.wakeup,
    )


def located(node: UsdtNode) -> NodeProcess:
    assert node.pid is not None
    process = process_by_pid(node.pid)
    assert process is not None
    return process


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def is_open(fd: int) -> bool:
    """Without opening anything (a listing's own descriptor could take a freed number)."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def waiting_node(binary: Path) -> Iterator[UsdtNode]:
    with UsdtNode(binary) as node:
        node.start(UsdtScenario(count=20, wait_start=True))
        yield node


def test_closing_closes_no_descriptor_the_session_does_not_own(waiting_node: UsdtNode) -> None:
    """Once BCC has freed its maps and programs, every free descriptor number is taken by
    a bystander, as another thread's Kafka socket or Cap'n Proto stream could take it;
    the rest of closing must leave them all open.

    BCC 0.26 (Debian 12) keeps a stale number in a pid-built USDT context and closes it
    when the context is destroyed; in the demo that closed pycapnp's descriptor and kj
    aborted the process at exit.
    """
    session = UsdtSession(located(waiting_node), EVENTS, options())
    assert session._program is not None
    bpf = session._program.bpf  # the hook point: right after BCC frees what it owns
    bystanders: list[int] = []
    free_bpf = bpf.cleanup

    def free_then_fill() -> None:
        free_bpf()
        ceiling = max(open_fds()) + FD_HEADROOM
        while not bystanders or bystanders[-1] < ceiling:
            bystanders.append(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))

    bpf.cleanup = free_then_fill
    try:
        session.close()
        assert bystanders, "the hook never ran: UsdtSession.close no longer frees BCC's maps"
        closed = [fd for fd in bystanders if not is_open(fd)]
        assert closed == [], f"closing the session closed descriptors it did not own: {closed}"
    finally:
        for fd in bystanders:
            with contextlib.suppress(OSError):  # closed by the bug under test
                os.close(fd)


def test_closing_lowers_every_semaphore(waiting_node: UsdtNode) -> None:
    """A node the bridge has let go of must pay nothing: its call sites are hit, but no
    tracepoint fires, because every semaphore is back to 0."""
    session = UsdtSession(located(waiting_node), EVENTS, options())
    session.close()
    waiting_node.go()
    report = waiting_node.wait(timeout=60)
    names = [spec.name for spec in EVENTS]
    assert report.hits == dict.fromkeys(names, 20)
    assert report.fired == dict.fromkeys(names, 0)


def test_a_live_session_raises_every_semaphore(waiting_node: UsdtNode) -> None:
    """The counterpart: while attached, every hit fires."""
    session = UsdtSession(located(waiting_node), EVENTS, options())
    try:
        waiting_node.go()
        report = waiting_node.wait(timeout=60)
    finally:
        session.close()
    names = [spec.name for spec in EVENTS]
    assert report.fired == dict.fromkeys(names, 20)


def test_a_failed_attach_lowers_the_semaphores_it_raised(waiting_node: UsdtNode) -> None:
    """The probes are enabled (semaphores raised) before the program is loaded and its
    rings mapped; when that fails, the node must not be left paying for a tracer that
    never came. (Config validation refuses this ring size; the session itself must
    still fail cleanly.)"""
    broken = options()
    broken.ring_kib["net"] = 3  # not a power of two: the ring cannot be mapped
    with pytest.raises(ValueError, match="not a power of two"):
        UsdtSession(located(waiting_node), EVENTS, broken)
    waiting_node.go()
    report = waiting_node.wait(timeout=60)
    assert report.fired == dict.fromkeys((spec.name for spec in EVENTS), 0)


def test_a_kept_program_serves_the_next_process_from_seq_1(binary: Path) -> None:
    """A restarted node must be traced at once, so the compiled program is kept and
    reused for the next process of the same binary; the new session still starts
    every counter from zero, or its seqs would continue the last session's."""
    programs = ProgramCache()
    try:
        fired_per_run = []
        compiled = []
        for _ in range(2):
            with UsdtNode(binary) as node:
                node.start(UsdtScenario(count=7, wait_start=True))
                session = UsdtSession(located(node), EVENTS, options(), programs)
                try:
                    compiled.append(session.compiled)
                    node.go()
                    report = node.wait(timeout=60)
                    fired_per_run.append(session.kernel_counts())
                finally:
                    session.close()
                assert report.fired == dict.fromkeys((spec.name for spec in EVENTS), 7)
        assert compiled == [True, False]
        for counts in fired_per_run:
            assert {c.fired for c in counts.values()} == {7}
            assert {c.lost for c in counts.values()} == {0}
    finally:
        programs.close()


def test_a_kept_program_still_lowers_the_semaphores_of_each_process(binary: Path) -> None:
    """Reusing the program must not skip the per-process teardown: the node let go of
    pays nothing."""
    programs = ProgramCache()
    try:
        for _ in range(2):
            with UsdtNode(binary) as node:
                node.start(UsdtScenario(count=5, wait_start=True))
                UsdtSession(located(node), EVENTS, options(), programs).close()
                node.go()
                report = node.wait(timeout=60)
                assert report.fired == dict.fromkeys((spec.name for spec in EVENTS), 0)
    finally:
        programs.close()
