"""Both emulated nodes run in their own session, so a Ctrl-C in the terminal does not
reach them; if the process that started them dies without stopping them (a crashed
demo or test run), they must stop by themselves rather than fire forever and confuse
the next run that looks for a node by its binary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.emulator.usdt import build_usdt_node

STOP_WITHIN_S = 10.0

# A parent that starts a looping node, says its pid, and waits to be killed.
PARENT = """
import sys, time
kind = sys.argv[1]
if kind == "usdt":
    from bridge.emulator import UsdtNode, UsdtScenario
    node = UsdtNode().start(UsdtScenario(loop=True, rate=1000))
else:
    from bridge.emulator.ipc_node import IpcNode
    from bridge.emulator.ipc_scenario import IpcScenario
    node = IpcNode().start(IpcScenario(linger=True))
print(node.pid, flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.parametrize("kind", ["usdt", "ipc"])
def test_a_node_stops_when_its_parent_is_killed(kind: str) -> None:
    if kind == "usdt":
        build_usdt_node()  # compiled here, not inside the parent's start-up time
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, kind],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    node_pid = 0
    try:
        assert parent.stdout is not None
        node_pid = int(parent.stdout.readline())
        time.sleep(0.5)
        assert running(node_pid), "the node should run while its parent does"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + STOP_WITHIN_S
        while running(node_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(node_pid), f"the {kind} node outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if node_pid and running(node_pid):
            os.kill(node_pid, signal.SIGKILL)
