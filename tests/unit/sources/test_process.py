"""Finding the node process against real child processes (``sleep``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.sources.usdt.process import (
    NodeProcess,
    process_by_binary,
    process_by_pid,
    process_by_pidfile,
    processes_by_binary,
)
from tests.support.processes import started

SLEEP = shutil.which("sleep")
pytestmark = pytest.mark.skipif(SLEEP is None, reason="needs sleep(1)")

# A start time is in clock ticks (usually 10 ms); this gap guarantees a different tick.
TICK_GAP_S = 3 / os.sysconf("SC_CLK_TCK")

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start processes that are killed and reaped at the end of the test."""
    children: list[subprocess.Popen[bytes]] = []

    def start(executable: str | Path | None = None) -> subprocess.Popen[bytes]:
        exe = str(executable or SLEEP)
        child = started([exe, "30"])
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def wait_for_state(pid: int, wanted: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while state(pid) != wanted:
        assert time.monotonic() < deadline, f"pid {pid} never reached state {wanted}"
        time.sleep(0.005)


def ticks_since_boot() -> float:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime * os.sysconf("SC_CLK_TCK")


def started_just_now(node: NodeProcess) -> bool:
    """The start time read is a start time: within the last minute of uptime."""
    now = ticks_since_boot()
    return now - 60 * os.sysconf("SC_CLK_TCK") <= node.start_ticks <= now + 1


def unused_pid() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


# ------------------------------------------------------------------ by pid


def test_process_by_pid(spawn: Spawn) -> None:
    child = spawn()
    node = process_by_pid(child.pid)
    assert node is not None
    assert node.pid == child.pid
    assert SLEEP is not None
    assert node.exe == Path(os.path.realpath(SLEEP))
    assert started_just_now(node)
    assert node.alive()
    assert process_by_pid(child.pid) == node  # same identity when looked up again


def test_process_by_pid_of_this_process() -> None:
    node = process_by_pid(os.getpid())
    assert node is not None
    assert node.alive()


def test_process_by_pid_without_a_process() -> None:
    assert process_by_pid(unused_pid()) is None


def test_not_alive_once_exited_and_reaped(spawn: Spawn) -> None:
    child = spawn()
    node = process_by_pid(child.pid)
    assert node is not None
    assert node.alive()
    child.terminate()
    child.wait()
    assert not node.alive()
    assert process_by_pid(child.pid) is None


def test_a_zombie_is_not_alive(spawn: Spawn) -> None:
    """Exited but not yet reaped by its parent: the node is gone already."""
    child = spawn()
    node = process_by_pid(child.pid)
    assert node is not None
    os.kill(child.pid, signal.SIGKILL)
    wait_for_state(child.pid, "Z")
    assert not node.alive()
    assert process_by_pid(child.pid) is None
    child.wait()


def test_stopped_process_is_still_alive(spawn: Spawn) -> None:
    child = spawn()
    node = process_by_pid(child.pid)
    assert node is not None
    os.kill(child.pid, signal.SIGSTOP)
    try:
        wait_for_state(child.pid, "T")
        assert node.alive()
    finally:
        os.kill(child.pid, signal.SIGCONT)


def test_identity_survives_pid_reuse(spawn: Spawn) -> None:
    """A PID alone is not an identity: a new process under the same PID is not the node."""
    first = spawn()
    old = process_by_pid(first.pid)
    assert old is not None
    time.sleep(TICK_GAP_S)
    second = spawn()
    new = process_by_pid(second.pid)
    assert new is not None
    assert new.start_ticks > old.start_ticks
    # What the old node's record would look like had the kernel given its PID to `second`.
    reused = NodeProcess(pid=second.pid, exe=old.exe, start_ticks=old.start_ticks)
    assert not reused.alive()
    assert NodeProcess(pid=second.pid, exe=old.exe, start_ticks=new.start_ticks).alive()


def test_process_with_spaces_and_parens_in_its_name(spawn: Spawn, tmp_path: Path) -> None:
    """/proc/<pid>/stat's comm may contain ') ' — the parser must split after the last one."""
    assert SLEEP is not None
    odd = tmp_path / "a) b (c"
    shutil.copy(SLEEP, odd)
    child = spawn(odd)
    node = process_by_pid(child.pid)
    assert node is not None
    assert node.exe == odd
    assert node.alive()
    assert started_just_now(node)
    os.kill(child.pid, signal.SIGKILL)
    wait_for_state(child.pid, "Z")
    assert not node.alive()  # the state field was found despite the name
    child.wait()


# ------------------------------------------------------------------ by pidfile


def test_process_by_pidfile(spawn: Spawn, tmp_path: Path) -> None:
    child = spawn()
    pidfile = tmp_path / "bitcoind.pid"
    pidfile.write_text(f"{child.pid}\n")
    node = process_by_pidfile(pidfile)
    assert node is not None
    assert node.pid == child.pid
    pidfile.write_text(f"  {child.pid}  ")
    assert process_by_pidfile(pidfile) == node


@pytest.mark.parametrize("content", ["", "abc", "12 34", "\n"])
def test_unreadable_pidfile_content(tmp_path: Path, content: str) -> None:
    pidfile = tmp_path / "bitcoind.pid"
    pidfile.write_text(content)
    assert process_by_pidfile(pidfile) is None


def test_missing_pidfile(tmp_path: Path) -> None:
    assert process_by_pidfile(tmp_path / "nope.pid") is None


def test_pidfile_of_an_exited_process(spawn: Spawn, tmp_path: Path) -> None:
    child = spawn()
    pidfile = tmp_path / "bitcoind.pid"
    pidfile.write_text(str(child.pid))
    child.kill()
    child.wait()
    assert process_by_pidfile(pidfile) is None


def test_pidfile_is_reread_after_a_restart(spawn: Spawn, tmp_path: Path) -> None:
    pidfile = tmp_path / "bitcoind.pid"
    first = spawn()
    pidfile.write_text(str(first.pid))
    before = process_by_pidfile(pidfile)
    first.kill()
    first.wait()
    second = spawn()
    pidfile.write_text(str(second.pid))
    after = process_by_pidfile(pidfile)
    assert before is not None
    assert after is not None
    assert after.pid == second.pid
    assert not before.alive()
    assert after.alive()


# ------------------------------------------------------------------ by binary


@pytest.fixture
def node_binary(tmp_path: Path) -> Path:
    """A private copy of sleep, so no unrelated process on the machine executes it."""
    assert SLEEP is not None
    binary = tmp_path / "fake_bitcoind"
    shutil.copy(SLEEP, binary)
    return binary


def test_process_by_binary_finds_the_oldest(spawn: Spawn, node_binary: Path) -> None:
    assert process_by_binary(node_binary) is None
    oldest = spawn(node_binary)
    time.sleep(TICK_GAP_S)
    younger = spawn(node_binary)
    spawn()  # the system's sleep: a different file, never a match
    node = process_by_binary(node_binary)
    assert node is not None
    assert node.pid == oldest.pid
    assert node.exe == node_binary
    oldest.kill()
    oldest.wait()
    again = process_by_binary(node_binary)
    assert again is not None
    assert again.pid == younger.pid


def test_process_by_binary_through_a_symlink(spawn: Spawn, node_binary: Path) -> None:
    child = spawn(node_binary)
    link = node_binary.with_name("bitcoind-link")
    link.symlink_to(node_binary)
    node = process_by_binary(link)
    assert node is not None
    assert node.pid == child.pid


def test_process_by_binary_started_through_a_symlink(spawn: Spawn, node_binary: Path) -> None:
    link = node_binary.with_name("bitcoind-link")
    link.symlink_to(node_binary)
    child = spawn(link)
    node = process_by_binary(node_binary)
    assert node is not None
    assert node.pid == child.pid


def test_process_by_binary_ignores_zombies(spawn: Spawn, node_binary: Path) -> None:
    child = spawn(node_binary)
    os.kill(child.pid, signal.SIGKILL)
    wait_for_state(child.pid, "Z")
    assert process_by_binary(node_binary) is None
    child.wait()


def test_process_by_missing_binary(tmp_path: Path) -> None:
    assert process_by_binary(tmp_path / "nope") is None


def test_two_nodes_of_one_binary_are_told_apart_by_their_arguments(
    node_binary: Path,
) -> None:
    """Mainnet and signet from one bitcoind: a restarted node must be found by its own
    arguments, never by being the oldest process that runs the binary."""
    mainnet = started([node_binary, "30"])
    time.sleep(TICK_GAP_S)
    signet = started([node_binary, "31"])
    try:
        node = process_by_binary(node_binary, ("31",))
        assert node is not None
        assert node.pid == signet.pid
        assert node.arguments == ("31",)
        assert process_by_binary(node_binary, ("32",)) is None
        assert [n.pid for n in processes_by_binary(node_binary)] == [mainnet.pid, signet.pid]
    finally:
        for child in (mainnet, signet):
            child.kill()
            child.wait()


def test_a_process_read_in_the_middle_of_its_exec_has_its_arguments(node_binary: Path) -> None:
    """Right after Popen returns, /proc shows the new exe but often (a third of the
    time, measured) an empty command line: the arguments must still come out right,
    since ``--pid`` finds a restarted node by them."""
    for attempt in range(100):
        child = subprocess.Popen([str(node_binary), "30", f"{attempt}s"])
        try:
            node = process_by_pid(child.pid)
            assert node is not None
            assert node.arguments == ("30", f"{attempt}s")
        finally:
            child.kill()
            child.wait()
