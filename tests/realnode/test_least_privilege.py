"""`tracebridge run` as an ordinary user with exactly the USDT capabilities, on a real node.

The ownership case this covers, and the one deploy/ supports: the node runs as another
user (here root, as the realnode fixtures start it; in production its own ``bitcoin``
user) and the bridge as its own unprivileged user (here ``nobody``), with exactly
:data:`~bridge.sources.usdt.privileges.USDT_CAPABILITIES` and nothing else: no
supplementary groups, no new privileges, every other capability gone from the bounding
set. The bridge process is checked to really be that (uid and CapEff, read from /proc
while it runs), then judged as every real-node test is: the blocks the node mined
arrive, and the books balance under the strict audit.

The binary is a world-readable copy, because the bridge reads it by path (through
``/proc/<pid>/root``) and the cache it is unpacked into sits under root's 0700 home.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.realnode.binaries import CoreBinaries
from bridge.realnode.node import RegtestNode
from bridge.resources import REPO_ROOT
from bridge.sources.usdt.privileges import (
    USDT_CAPABILITIES,
    Capability,
    capability_mask,
    setpriv_prefix,
)
from bridge.status import BridgeExited, StatusFile
from tests.support.pipeline import events_by_stream, read_topics, verdicts

pytestmark = [pytest.mark.realnode, pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

TRACEBRIDGE = REPO_ROOT / ".venv" / "bin" / "tracebridge"
NOBODY = 65534
BLOCKS = 3


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can read (the node's binary) and write (the status file);
    pytest's own tmp_path is root's alone."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to start the bridge as nobody")
    # Long, as release tarballs unpack (``bitcoin-<version>/bin``): BCC names each
    # uprobe after the binary's path, and the tracefs registration an unprivileged
    # bridge falls back to refuses event names over 64 bytes (EINVAL).
    directory = Path(f"/tmp/tracebridge-least-privilege-{os.getpid()}/bitcoin-31.99.0")
    shutil.rmtree(directory.parent, ignore_errors=True)
    directory.mkdir(parents=True)
    directory.parent.chmod(0o755)
    directory.chmod(0o755)
    (directory / "run").mkdir(mode=0o1777)
    (directory / "run").chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory.parent, ignore_errors=True)


@pytest.fixture
def node(core_binaries: CoreBinaries, shared_dir: Path, tmp_path: Path) -> Iterator[RegtestNode]:
    """A real bitcoind, run by root from a binary every user can read."""
    binary = shared_dir / "bitcoind"
    # A copy of its own (uprobes are per inode): only this test's bridge probes it.
    shutil.copy2(core_binaries.bitcoind, binary)
    binary.chmod(0o755)
    with RegtestNode(binary, tmp_path / "node") as started:
        started.start()
        yield started


def bridge_as_nobody(capabilities: tuple[Capability, ...], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*setpriv_prefix(NOBODY, NOBODY, capabilities), str(TRACEBRIDGE), "run", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def credentials(pid: int) -> tuple[list[str], int]:
    """(the Uid line's four ids, CapEff) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    cap_eff = next(line for line in status if line.startswith("CapEff:")).split()[1]
    return uids, int(cap_eff, 16)


def test_run_as_nobody_with_exactly_the_usdt_capabilities(
    node: RegtestNode, shared_dir: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    status = shared_dir / "run" / "status.json"
    bridge = bridge_as_nobody(
        USDT_CAPABILITIES,
        "--pid",
        str(node.pid),
        "-b",
        kafka_bootstrap,
        "--topic-prefix",
        topic_prefix,
        "--status-file",
        str(status),
    )
    try:
        try:
            attached = StatusFile(status).wait_for(
                "attached", timeout=90, still_running=lambda: bridge.poll() is None
            )
        except BridgeExited:
            raise AssertionError(bridge.communicate(timeout=60)[1]) from None
        assert attached is not None
        uids, effective = credentials(bridge.pid)
        assert uids == [str(NOBODY)] * 4
        assert effective == capability_mask()
        descriptor = node.call("getdescriptorinfo", "raw(51)")["descriptor"]
        hashes = node.call("generatetodescriptor", BLOCKS, descriptor)
    finally:
        bridge.send_signal(signal.SIGINT)
        _, stderr = bridge.communicate(timeout=180)
    assert bridge.returncode == 0, stderr
    assert "Traceback" not in stderr
    # The bridge's own warnings, e.g. uprobes or semaphores not cleaned up; librdkafka's
    # (a fresh broker's "coordinator load in progress") are the broker's business.
    warnings = [line for line in stderr.splitlines() if " WARNING bridge." in line]
    assert not warnings, stderr

    records = read_topics(kafka_bootstrap, topic_prefix)
    assert all(v.ok for v in verdicts(records))
    connected = events_by_stream(records)["validation:block_connected"]
    assert [e["block_hash_hex"] for e in connected] == hashes
    assert [e["height"] for e in connected] == list(range(1, BLOCKS + 1))


@pytest.mark.parametrize("dropped", USDT_CAPABILITIES, ids=lambda c: c.name)
def test_without_one_capability_it_fails_naming_it(
    node: RegtestNode, kafka_bootstrap: str, topic_prefix: str, dropped: Capability
) -> None:
    """One line naming the capability and why, exit status 1, before Kafka or BCC is
    touched. Without the check each drop failed differently, and never by name: BCC's
    'Operation not permitted', 'Failed to enable USDT probe', or, without
    CAP_SYS_PTRACE, 'no running process has pid ...' for a node that was running."""
    fewer = tuple(c for c in USDT_CAPABILITIES if c is not dropped)
    bridge = bridge_as_nobody(
        fewer, "--pid", str(node.pid), "-b", kafka_bootstrap, "--topic-prefix", topic_prefix
    )
    _, stderr = bridge.communicate(timeout=60)
    assert bridge.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"tracebridge: error: USDT tracing lacks {dropped.name}: ")
    assert dropped.why in lines[0]
    assert node.running
