"""Child processes for tests that read them back through /proc."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def started(args: Sequence[str | Path], timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
    """``Popen(args)``, returned once /proc shows the new program's arguments.

    Popen returns as soon as the exec has closed the child's close-on-exec pipe, which
    happens before the kernel has set up the new program's argument area: for a moment
    /proc/<pid>/cmdline reads empty (as for a zombie), so a test that looks the child
    up by its arguments at once is a race that a loaded machine loses."""
    child = subprocess.Popen([str(arg) for arg in args])
    deadline = time.monotonic() + timeout_s
    while not Path(f"/proc/{child.pid}/cmdline").read_bytes():
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            raise AssertionError(f"{args[0]} (pid {child.pid}) never showed its arguments")
        time.sleep(0.005)
    return child
