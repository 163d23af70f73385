"""The reindex benchmark: ``bitcoind -reindex-chainstate`` untraced, and traced by the
bridge on every UTXO-cache and validation tracepoint.

This is the workload of morozow's table in RFC #35142 (a mainnet ``-reindex``: +5.8 %
for bpftrace counters, +82 % for a bpftrace ``printf`` per event), here on a regtest
chain this machine can build: connecting blocks from disk fires
``utxocache:add``/``spent`` for every output created and spent and
``validation:block_connected`` per block, as fast as the node can go.

**The chain** is built once and cached (:mod:`.reindex_chain` says how and why its
transactions need no signatures); ``regtest/blocks`` is all that is kept of it.

**Each run** copies those into a fresh datadir (the cache is never written, and the
copy leaves the block files in the page cache for every run alike) and starts
``bitcoind -reindex-chainstate -loadblock=<fifo>``. ``-loadblock`` opens its files
after the block index is loaded and before any block is connected; a FIFO with no
writer yet makes that open wait, so the node is held there, traced or not, for as long
as the benchmark likes. The bridge (``tracebridge run --pid``) attaches during the
hold; the FIFO is then opened and closed (an empty import) and the node connects the
whole chain. No block is connected before the bridge is attached; the ledger's
``validation:block_connected`` count (one per block but genesis) shows it.

**Wall time** is the node's own: from debug.log's "Loaded 0 blocks from external file"
(the hold has ended; the chain is connected next) to the ``UpdateTip`` line of the
last block, both with ``-logtimemicros``. The benchmark learns that the tip is reached
by polling RPC, then stops the node (the final ``utxocache:flush`` is in the books),
and reads the bridge's SESSION_END books from its status file.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bridge.bench.ping import BridgeProcess, process_cpu_s, sum_books, table_head
from bridge.bench.reindex_chain import CachedChain
from bridge.realnode.binaries import CoreBinaries
from bridge.realnode.node import RPC_IN_WARMUP, RegtestNode
from bridge.realnode.rpc import RpcError, RpcUnavailable

TRACEPOINTS = ("utxocache", "validation")
HEIGHT_POLL_S = 0.1
_LOG_TIME = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z "


@dataclass(frozen=True)
class ReindexRun:
    """One ``-reindex-chainstate`` of the cached chain."""

    condition: str  # "none" or "bridge"
    wall_s: float  # the node's own clock: hold released .. last block's UpdateTip
    blocks: int
    node_cpu_s: float  # utime + stime over the same span (/proc, read around RPC polls)
    fired: int | None = None
    delivered: int | None = None
    lost: dict[str, int] = field(default_factory=dict)
    blocks_traced: int | None = None  # validation:block_connected fired
    bridge_cpu_s: float | None = None

    @property
    def blocks_per_s(self) -> float:
        return self.blocks / self.wall_s if self.wall_s else 0.0


def _log_time(line: str) -> float:
    match = re.match(_LOG_TIME, line)
    if match is None:
        raise ValueError(f"no -logtimemicros timestamp in {line[:80]!r}")
    return datetime.fromisoformat(match.group(1) + "+00:00").timestamp()


def reindex_span(debug_log: Path, height: int) -> float:
    """Seconds from the end of the hold (the empty ``-loadblock`` import) to the tip's
    ``UpdateTip``, by the node's own log clock."""
    start: float | None = None
    end: float | None = None
    tip = re.compile(rf"UpdateTip: new best=\w+ height={height} ")
    with debug_log.open(errors="replace") as log:
        for line in log:
            if start is None and "blocks from external file" in line:
                start = _log_time(line)
            elif start is not None and tip.search(line):
                end = _log_time(line)
                break
    if start is None or end is None:
        raise RuntimeError(f"{debug_log} does not show the reindex from hold to height {height}")
    return end - start


class _HeldNode:
    """A node on a fresh copy of the chain, started with -reindex-chainstate and held
    before its first block until :meth:`release`."""

    def __init__(
        self, binaries: CoreBinaries, chain: CachedChain, workdir: Path, dbcache_mib: int
    ) -> None:
        self.chain = chain
        datadir = workdir / "node"
        shutil.copytree(chain.directory / "regtest", datadir / "regtest")
        self.fifo = workdir / "hold.fifo"
        os.mkfifo(self.fifo)
        self.node = RegtestNode(
            binaries.bitcoind,
            datadir,
            extra_args=[
                "-reindex-chainstate",
                f"-loadblock={self.fifo}",
                "-logtimemicros",
                "-disablewallet",
                "-connect=0",
                f"-dbcache={dbcache_mib}",
            ],
            name="reindex",
        )
        self.cpu_at_release = 0.0

    def release(self) -> None:
        """End the hold: an empty import, then the node connects the chain."""
        self.cpu_at_release = process_cpu_s(self.node.pid)
        with self.fifo.open("wb"):
            pass

    def wait_for_tip(self, timeout_s: float) -> float:
        """Poll until the tip is the chain's; returns the node's CPU since the release."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.node.call("getblockcount") == self.chain.height:
                    return process_cpu_s(self.node.pid) - self.cpu_at_release
            except RpcUnavailable:
                pass
            except RpcError as error:
                if error.code != RPC_IN_WARMUP:  # the genesis block is connected first
                    raise
            if not self.node.running:
                raise RuntimeError("the node exited during the reindex")
            time.sleep(HEIGHT_POLL_S)
        raise TimeoutError(f"the reindex did not reach height {self.chain.height}")

    def finish(self) -> float:
        """Stop the node (its final flush is traced too); the reindex's wall time."""
        self.node.stop()
        return reindex_span(self.node.debug_log, self.chain.height)


def run_untraced(
    binaries: CoreBinaries, chain: CachedChain, dbcache_mib: int, timeout_s: float
) -> ReindexRun:
    with tempfile.TemporaryDirectory(prefix="tracebridge-reindex-") as tmp:
        held = _HeldNode(binaries, chain, Path(tmp), dbcache_mib)
        with held.node:
            held.node.start(wait=False)
            held.release()
            cpu = held.wait_for_tip(timeout_s)
            wall = held.finish()
    return ReindexRun("none", wall, chain.height, cpu)


def run_traced(
    binaries: CoreBinaries, chain: CachedChain, dbcache_mib: int, timeout_s: float,
    bootstrap: str, bridge_env: dict[str, str],
) -> ReindexRun:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tracebridge-reindex-") as tmp:
        held = _HeldNode(binaries, chain, Path(tmp), dbcache_mib)
        bridge_dir = Path(tmp) / "bridge"
        bridge_dir.mkdir()
        with held.node:
            held.node.start(wait=False)
            args = ["--pid", str(held.node.pid)]
            for tracepoints in TRACEPOINTS:
                args += ["-t", tracepoints]
            prefix = f"bench-reindex-{int(time.time())}"
            bridge = BridgeProcess(args, bridge_env, bootstrap, prefix, bridge_dir)
            try:
                attached = bridge.wait_for("attached", None, timeout=120)
                if attached.get("node_pid") != held.node.pid:
                    raise RuntimeError(f"the bridge attached to pid {attached.get('node_pid')}")
                bridge_cpu = process_cpu_s(bridge.process.pid)
                held.release()
                cpu = held.wait_for_tip(timeout_s)
                wall = held.finish()
                ended = bridge.wait_for("session_ended", None, timeout=600)
                bridge_cpu = process_cpu_s(bridge.process.pid) - bridge_cpu
            finally:
                bridge.close()
    fired, delivered, lost = sum_books(ended)
    blocks_traced, _, _ = sum_books(ended, ("validation:block_connected",))
    return ReindexRun(
        "bridge", wall, chain.height, cpu, fired=fired, delivered=delivered, lost=lost,
        blocks_traced=blocks_traced, bridge_cpu_s=bridge_cpu,
    )  # fmt: skip


def run_reindex(
    binaries: CoreBinaries, chain: CachedChain, bootstrap: str, *, repeat: int = 3,
    dbcache_mib: int = 450, timeout_s: float = 1800.0,
    bridge_env: dict[str, str] | None = None, say: Callable[[str], None] = print,
) -> list[ReindexRun]:  # fmt: skip
    """``repeat`` pairs of runs, untraced then traced, on the same cached chain."""
    runs: list[ReindexRun] = []
    for round_ in range(1, repeat + 1):
        say(f"Round {round_}/{repeat}: -reindex-chainstate untraced ...")
        runs.append(run_untraced(binaries, chain, dbcache_mib, timeout_s))
        say(f"Round {round_}/{repeat}: -reindex-chainstate with the bridge attached ...")
        runs.append(
            run_traced(binaries, chain, dbcache_mib, timeout_s, bootstrap, bridge_env or {})
        )
    return runs


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


REINDEX_COLUMNS = (
    "condition",
    "wall s",
    "blocks/s",
    "added wall %",
    "node CPU s",
    "events fired",
    "delivered",
    "events/s delivered",
    "events/block",
    "lost kernel/bridge/producer",
    "blocks traced",
    "bridge CPU us/ev",
)


def format_reindex_table(chain: CachedChain, runs: Sequence[ReindexRun]) -> str:
    """The chain, one line per run, and the added wall time of the medians."""
    lines = [
        f"chain: height {chain.height:,}, {chain.transactions:,} transactions, "
        f"{chain.utxos:,} UTXOs at the tip, {chain.size_on_disk / 2**20:,.0f} MiB of blocks",
        "",
        *table_head(REINDEX_COLUMNS),
    ]
    untraced = _median([r.wall_s for r in runs if r.condition == "none"] or [float("nan")])
    for r in runs:
        added = "-" if r.condition == "none" else f"{100 * (r.wall_s / untraced - 1):+.1f}"
        if r.fired is None or r.delivered is None:
            books = "- | - | - | - | - | - | -"
        else:
            lost = "/".join(str(r.lost.get(k, 0)) for k in ("kernel", "bridge", "producer"))
            cpu_us = 1e6 * (r.bridge_cpu_s or 0.0) / r.delivered if r.delivered else float("nan")
            books = (
                f"{r.fired:,} | {r.delivered:,} | {r.delivered / r.wall_s:,.0f} | "
                f"{r.fired / r.blocks:,.0f} | {lost} | {r.blocks_traced:,}/{r.blocks:,} | "
                f"{cpu_us:.2f}"
            )
        lines.append(
            f"| {r.condition} | {r.wall_s:.2f} | {r.blocks_per_s:,.0f} | {added} | "
            f"{r.node_cpu_s:.2f} | {books} |"
        )
    traced = [r.wall_s for r in runs if r.condition == "bridge"]
    if traced and len(traced) > 1:
        lines += [
            "",
            f"median wall: untraced {untraced:.2f} s, traced {_median(traced):.2f} s "
            f"({100 * (_median(traced) / untraced - 1):+.1f} %)",
        ]
    return "\n".join(lines)
