"""Run commands, and find, signal and wait for a service's JVM without touching anyone else's.

A pid read from a state file can go stale, and the kernel can hand the same pid to an
unrelated process. So a process counts as ours only while its ``/proc/<pid>/cmdline``
carries a *marker*: an argument naming its run directory's config file, which no other
process has a reason to carry.
"""

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# How often readiness and exit are polled: small next to a JVM start of a few seconds.
POLL_INTERVAL_S = 0.2

# Waiting for a launched process to show its command line: microseconds, unless the
# machine is badly overloaded.
EXEC_WAIT_S = 5.0

# Waiting for the JVM to die after SIGKILL: the kernel reaps it at once, so this only
# guards against a D-state process on a broken disk.
KILL_WAIT_S = 10.0


def run_captured(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion without input, its stdout and stderr merged into ``stdout``.

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds and ``OSError`` if it
    cannot be started; a non-zero exit is the caller's to judge.
    """
    return subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_logged(cmd: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in the background in ``cwd``, its output appended to ``log_path``.

    A new session keeps a Ctrl-C aimed at the test run or CLI away from the JVM: it is
    stopped through ``terminate_marked``, which waits for a clean shutdown. Running it in
    its run directory keeps anything it writes to relative paths out of the repository.
    """
    logger.debug("Launching %s", " ".join(cmd))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Popen returns once execve has replaced the child's memory, but the kernel publishes
    # the new command line a moment later; until then /proc shows it empty. Waiting for it
    # lets an ownership check made at once (a stop() after a failed start) recognise it.
    deadline = time.monotonic() + EXEC_WAIT_S
    while cmdline(proc.pid) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    return proc


def cmdline(pid: int) -> list[str] | None:
    """Return the arguments of a live process, or None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # A zombie has an empty cmdline; treat it like a dead process.
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg] or None


def pid_alive(pid: int) -> bool:
    """Return whether ``pid`` is a live process (a zombie counts as dead)."""
    return cmdline(pid) is not None


def carries_marker(pid: int, marker: str) -> bool:
    """Return whether ``pid`` is alive and has ``marker`` as one of its arguments."""
    args = cmdline(pid)
    return args is not None and marker in args


def signal_if_marked(pid: int, marker: str, sig: signal.Signals) -> bool:
    """Signal ``pid`` only after checking, race-free, that it carries ``marker``.

    A pidfd pins the process: once opened, the check and the signal reach the same
    process even if the pid is recycled in between. Returns whether the signal was sent.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not carries_marker(pid, marker):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def wait_for_exit(pid: int, timeout: float, child: subprocess.Popen[bytes] | None) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; return whether it did.

    ``child`` is the ``Popen`` this process started, if any: when it is ``pid``, it is
    waited for (and so reaped) directly instead of polled.
    """
    if child is not None and child.pid == pid:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    # Not our child (started by another process): poll until it is gone or a zombie
    # waiting for its own parent to reap it.
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def terminate_marked(
    pid: int,
    marker: str,
    timeout: float,
    child: subprocess.Popen[bytes] | None,
    *,
    what: str,
    log_path: Path,
    error: type[Exception],
) -> bool:
    """Stop ``pid`` with SIGTERM, escalating to SIGKILL after ``timeout`` seconds.

    Every signal goes through ``signal_if_marked``, so a pid that stopped carrying
    ``marker`` is left alone. Returns whether the SIGTERM was sent. ``child`` is as for
    ``wait_for_exit``; ``what`` names the process in messages ("Kafka broker"), and
    ``log_path`` is named in the ``error`` raised if even SIGKILL fails.
    """
    # SIGTERM runs the JVM's shutdown hooks (Kafka's controlled shutdown, which closes the
    # logs cleanly so the next start skips log recovery; Quarkus' shutdown).
    signalled = signal_if_marked(pid, marker, signal.SIGTERM)
    if signalled and not wait_for_exit(pid, timeout, child):
        logger.warning(
            "The %s (pid %d) ignored SIGTERM for %.0f s; killing it.", what, pid, timeout
        )
        signal_if_marked(pid, marker, signal.SIGKILL)
        if not wait_for_exit(pid, KILL_WAIT_S, child):
            raise error(f"The {what} (pid {pid}) survived SIGKILL; see {log_path}.")
    return signalled
