"""Finding the node process, and noticing when it is gone.

A PID alone is not an identity: after bitcoind exits, the kernel may hand its PID to
something else. A process is therefore identified by (pid, start time) from
``/proc/<pid>/stat``, and a restarted node is found again by its pidfile, or by the
binary it executes together with its arguments: one host often runs several nodes from
one binary (mainnet and signet, say), told apart only by ``-datadir``/``-chain``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class NodeProcess:
    """One run of the node: its PID, the binary it executes, and when it started."""

    pid: int
    exe: Path
    start_ticks: int
    arguments: tuple[str, ...] = field(default=(), compare=False)  # argv[1:]

    def alive(self) -> bool:
        """True while this very process (not a PID reuse) is running and not a zombie."""
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.start_ticks and stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None if it does not exist."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])  # state (field 3), starttime (field 22)


# How long a process may show an empty command line before we take it as empty.
EXEC_SETTLE_S = 0.2


def process_by_pid(pid: int) -> NodeProcess | None:
    """The process with ``pid``, if it is running."""
    stat = _stat(pid)
    if stat is None or stat[0] == "Z":
        return None
    try:
        exe = Path(os.readlink(PROC / str(pid) / "exe"))
        raw = _settled_cmdline(pid)
    except OSError:
        return None
    arguments = tuple(arg.decode(errors="replace") for arg in raw.split(b"\0")[1:] if arg)
    return NodeProcess(pid=pid, exe=exe, start_ticks=stat[1], arguments=arguments)


def _settled_cmdline(pid: int) -> bytes:
    """``/proc/<pid>/cmdline``, read again while it is empty (for up to EXEC_SETTLE_S).

    A process in the middle of its exec already shows the new ``exe`` but not yet its
    arguments: the kernel sets up the new argument area last, so the command line reads
    empty for a moment (a third of the time right after ``Popen`` returns, measured).
    Arguments read then would be remembered wrong (``--pid`` finds a restarted node by
    them), so an empty one is given the moment it takes."""
    deadline = time.monotonic() + EXEC_SETTLE_S
    while True:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
        if raw or time.monotonic() >= deadline:
            return raw
        time.sleep(0.001)


def process_by_pidfile(pidfile: Path) -> NodeProcess | None:
    """The process named by a pidfile (bitcoind -pid=...), if the file and process exist."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return process_by_pid(pid)


def process_by_binary(binary: Path, arguments: tuple[str, ...] | None = None) -> NodeProcess | None:
    """The oldest running process executing ``binary`` (the node, not a short-lived
    helper), with exactly ``arguments`` if they are given."""
    found = processes_by_binary(binary)
    if arguments is not None:
        found = [node for node in found if node.arguments == arguments]
    return found[0] if found else None


def processes_by_binary(binary: Path) -> list[NodeProcess]:
    """Every running process executing ``binary``, oldest first."""
    try:
        target = binary.resolve(strict=True)
        target_stat = target.stat()
    except OSError:
        return []
    found: list[NodeProcess] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = entry / "exe"
            same = os.path.samestat(exe.stat(), target_stat)
        except OSError:
            continue
        if same and (node := process_by_pid(int(entry.name))) is not None:
            found.append(node)
    return sorted(found, key=lambda n: n.start_ticks)
