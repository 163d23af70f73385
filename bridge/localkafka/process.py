"""Find, signal and wait for the broker's JVM without ever touching someone else's process.

A pid read from broker.json can go stale, and the kernel can hand the same pid to an
unrelated process. So a process counts as our broker only while its ``/proc/<pid>/cmdline``
carries a *marker*: the absolute path of its run directory's server.properties, which no
other process has a reason to name.
"""

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from bridge.localkafka import LocalKafkaError

logger = logging.getLogger(__name__)

# How often readiness and exit are polled: small next to a ~2.5 s broker start.
POLL_INTERVAL_S = 0.2

# Waiting for the JVM to die after SIGKILL: the kernel reaps it at once, so this only
# guards against a D-state process on a broken disk.
KILL_WAIT_S = 10.0


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
    log_path: Path,
) -> bool:
    """Stop ``pid`` with SIGTERM, escalating to SIGKILL after ``timeout`` seconds.

    Every signal goes through ``signal_if_marked``, so a pid that stopped carrying
    ``marker`` is left alone. Returns whether the SIGTERM was sent. ``child`` is as for
    ``wait_for_exit``; ``log_path`` is named in the error if even SIGKILL fails.
    """
    # SIGTERM runs kafka.Kafka's shutdown hook: a controlled shutdown that closes
    # the logs cleanly, so the next start skips log recovery.
    signalled = signal_if_marked(pid, marker, signal.SIGTERM)
    if signalled and not wait_for_exit(pid, timeout, child):
        logger.warning("Broker pid %d ignored SIGTERM for %.0f s; killing it.", pid, timeout)
        signal_if_marked(pid, marker, signal.SIGKILL)
        if not wait_for_exit(pid, KILL_WAIT_S, child):
            raise LocalKafkaError(f"Broker pid {pid} survived SIGKILL; see {log_path}.")
    return signalled
