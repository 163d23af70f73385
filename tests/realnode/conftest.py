"""Fixtures for the real-node tier: Bitcoin Core's own binaries on regtest, on loopback.

The binaries come from the shared tarball (bridge/realnode/binaries.py), unpacked once
into the cache. Without them these tests skip with the reason, except in CI (CI=true),
where a missing real node is a failure: the tier exists to run on every CI run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.realnode.binaries import BitcoinCoreMissing, CoreBinaries, ensure_binaries
from bridge.realnode.node import RegtestNode


@pytest.fixture(scope="session")
def core_binaries() -> CoreBinaries:
    try:
        return ensure_binaries()
    except BitcoinCoreMissing as error:
        if os.environ.get("CI"):
            pytest.fail(f"the real-node tier must run in CI: {error}")
        pytest.skip(str(error))


NodeFactory = Callable[..., RegtestNode]


@pytest.fixture
def regtest_node(core_binaries: CoreBinaries, tmp_path: Path) -> Iterator[NodeFactory]:
    """``regtest_node(name, ipc=False, extra_args=(), start=True)``: a started regtest
    node with its own datadir under tmp_path; every node made here is stopped at the end
    of the test (RPC stop, then SIGKILL), and only those."""
    made: list[RegtestNode] = []

    def make(
        name: str = "node",
        *,
        ipc: bool = False,
        extra_args: tuple[str, ...] = (),
        start: bool = True,
    ) -> RegtestNode:
        binary = core_binaries.bitcoin_node if ipc else core_binaries.bitcoind
        node = RegtestNode(binary, tmp_path / name, extra_args=extra_args, ipc=ipc, name=name)
        made.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in made:
        node.__exit__(None, None, None)
