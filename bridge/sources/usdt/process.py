"""Finding the node process, and noticing when it is gone.

A PID alone is not an identity: after bitcoind exits, the kernel may hand its PID to
something else. A process is therefore identified by (pid, start time) from
``/proc/<pid>/stat``, and a restarted node is found again by its pidfile, or by the
binary it executes together with its arguments: one host often runs several nodes from
one binary (mainnet and signet, say), told apart only by ``-datadir``/``-chain``.
"""

from __future__ import annotations

import os
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


def process_by_pid(pid: int) -> NodeProcess | None:
    """The process with ``pid``, if it is running."""
    stat = _stat(pid)
    if stat is None or stat[0] == "Z":
        return None
    try:
        exe = Path(os.readlink(PROC / str(pid) / "exe"))
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    arguments = tuple(arg.decode(errors="replace") for arg in argv[1:] if arg)
    return NodeProcess(pid=pid, exe=exe, start_ticks=stat[1], arguments=arguments)


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
