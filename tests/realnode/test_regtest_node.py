"""The real-node helpers themselves: start, talk, connect, stop only what they started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bridge.realnode.binaries import CoreBinaries
from bridge.realnode.rpc import RpcError
from tests.realnode.conftest import NodeFactory

pytestmark = pytest.mark.realnode


def test_two_nodes_connect_and_stop_cleanly(regtest_node: NodeFactory) -> None:
    a, b = regtest_node("a"), regtest_node("b")
    assert a.p2p_port != b.p2p_port
    a.connect_to(b)
    (peer,) = b.call("getpeerinfo")
    assert peer["inbound"]
    assert peer["addr"].startswith("127.0.0.1:")
    assert a.call("getpeerinfo")[0]["connection_type"] == "manual"
    with pytest.raises(RpcError) as error:
        a.call("getblockhash", 5)
    assert error.value.code == -8
    assert a.stop() == 0
    assert b.running  # stopping one stops only that one


def test_ipc_node_listens_on_its_socket(regtest_node: NodeFactory) -> None:
    node = regtest_node("ipc", ipc=True)
    assert node.ipc_socket.exists()
    assert node.call("getblockcount") == 0


def test_node_stops_when_its_parent_dies(core_binaries: CoreBinaries, tmp_path) -> None:
    """A crashed test run must leave no node behind for a later run to trace."""
    script = (
        "import sys, pathlib\n"
        "from bridge.realnode.node import RegtestNode\n"
        "node = RegtestNode(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))\n"
        "node.start()\n"
        "print(node.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(core_binaries.bitcoind), str(tmp_path / "orphan")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    with parent.stdout:
        pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ", 1)[1].startswith("Z"):
                return  # exited; reaped by init shortly
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the node outlived the process that started it")
