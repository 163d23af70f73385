"""The regtest chain the reindex benchmark replays: built once, cached.

A reindex is only worth timing if it lasts long enough to measure and looks like a real
one to the UTXO cache: many outputs created and many spent, a UTXO set that grows,
coins looked up at random. Building such a chain with the node's wallet is too slow
here: ``sendmany`` creates about 5,000 outputs/s on this machine and spends one or two
coins per transaction, while ``-reindex-chainstate`` replays about 400,000 outputs/s,
so a chain worth a 20-second reindex would take half an hour to build and would hold
almost no spends.

So the transactions are built here, in Python, and mined with ``generateblock``. Every
output pays to the P2WSH of the script ``OP_TRUE``: anyone can spend it with the
script as its only witness item, so no key and no signature is needed to build
thousands of transactions per second. A mainnet reindex verifies no scripts either for
blocks under ``-assumevalid`` (morozow's heights 0-200,000 are), so leaving signature
checks out keeps the comparison fair: what remains is the node's work per block,
transaction and coin, which is what the tracepoints fire on.

The shape: 200 blocks to the OP_TRUE address first (coinbases 1-100 then mature, the
funding), then ``blocks`` blocks of ``txs`` transactions each. A transaction spends two
random coins and pays three outputs (the UTXO set grows by one per transaction), except
while the set is still small, when it fans one coin out to 50.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.realnode.binaries import CoreBinaries
from bridge.realnode.node import RegtestNode
from bridge.resources import cache_dir

CHAIN_FILE = "chain.json"
# Bumped whenever the generator changes what it builds: old caches are then not reused.
GENERATOR_VERSION = 1
OP_TRUE = b"\x51"
# OP_0 <sha256(witness script)>: a P2WSH output whose witness script is OP_TRUE.
P2WSH_OP_TRUE = b"\x00\x20" + hashlib.sha256(OP_TRUE).digest()
# Heights 1-100 pay 50 BTC each and mature at height 200 (COINBASE_MATURITY = 100).
FUNDING_BLOCKS = 200
FUNDED_COINBASES = 100
SPEND_INPUTS = 2
SPEND_OUTPUTS = 3
FANOUT_OUTPUTS = 50
SEED = 35142  # the RFC's number: the same parameters always build the same chain


@dataclass(frozen=True)
class ChainSpec:
    """What the cached chain holds: ``blocks`` blocks of ``txs`` transactions each, on
    top of the 200 funding blocks."""

    blocks: int = 3000
    txs: int = 500

    @property
    def directory(self) -> Path:
        name = f"reindex-chain-v{GENERATOR_VERSION}-b{self.blocks}-t{self.txs}"
        return cache_dir() / "bench" / name


@dataclass(frozen=True)
class CachedChain:
    """A built chain: ``directory/regtest/blocks`` (block and undo files, block index)
    and the facts the node reported about it when it was built."""

    directory: Path
    height: int
    tip: str
    transactions: int
    utxos: int
    size_on_disk: int


Coin = tuple[bytes, int, int]  # txid (internal byte order), output index, value in sat


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


def op_true_tx(inputs: list[Coin], values: list[int]) -> tuple[bytes, str]:
    """A segwit transaction spending ``inputs`` (each with OP_TRUE as its witness) to
    P2WSH(OP_TRUE) outputs of ``values``; returns its txid (internal order) and hex."""
    ins = b"".join(
        txid + struct.pack("<I", vout) + b"\x00\xff\xff\xff\xff" for txid, vout, _ in inputs
    )
    outs = b"".join(
        struct.pack("<q", value) + _varint(len(P2WSH_OP_TRUE)) + P2WSH_OP_TRUE for value in values
    )
    body = _varint(len(inputs)) + ins + _varint(len(values)) + outs
    version, locktime = struct.pack("<i", 2), b"\x00\x00\x00\x00"
    txid = hashlib.sha256(hashlib.sha256(version + body + locktime).digest()).digest()
    witness = (b"\x01" + _varint(len(OP_TRUE)) + OP_TRUE) * len(inputs)
    return txid, (version + b"\x00\x01" + body + witness + locktime).hex()


class _CoinPool:
    """Spendable coins; random picks, swap-removed in O(1). Coins made in a block join
    only after it, so no transaction spends one made in its own block."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.coins: list[Coin] = []

    def take(self) -> Coin:
        index = self.rng.randrange(len(self.coins))
        coin = self.coins[index]
        self.coins[index] = self.coins[-1]
        self.coins.pop()
        return coin


def _block_txs(pool: _CoinPool, count: int) -> tuple[list[str], list[Coin]]:
    """``count`` transactions for one block, and the coins they create."""
    hexes: list[str] = []
    made: list[Coin] = []
    for _ in range(count):
        fanout = len(pool.coins) < SPEND_INPUTS * count * 4
        if not pool.coins:
            break
        inputs = [pool.take() for _ in range(1 if fanout else SPEND_INPUTS)]
        total = sum(value for _, _, value in inputs)  # no fee: generateblock needs none
        outputs = FANOUT_OUTPUTS if fanout else SPEND_OUTPUTS
        values = [total // outputs] * outputs
        values[0] += total - sum(values)
        txid, raw = op_true_tx(inputs, values)
        hexes.append(raw)
        made += [(txid, vout, value) for vout, value in enumerate(values)]
    return hexes, made


def _load(directory: Path) -> CachedChain | None:
    try:
        facts = json.loads((directory / CHAIN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return CachedChain(directory=directory, **facts)


def ensure_chain(
    binaries: CoreBinaries, spec: ChainSpec, say: Callable[[str], None] = print
) -> CachedChain:
    """The cached chain for ``spec``, built first if missing. It is built in a staging
    directory renamed into place when complete, so an interrupted build leaves nothing
    that looks finished."""
    found = _load(spec.directory)
    if found is not None:
        return found
    spec.directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=spec.directory.parent))
    try:
        facts = _build(binaries, spec, staging / "node", say)
        (staging / "regtest").mkdir()
        (staging / "node" / "regtest" / "blocks").rename(staging / "regtest" / "blocks")
        shutil.rmtree(staging / "node")
        (staging / CHAIN_FILE).write_text(json.dumps(facts, indent=2) + "\n")
        staging.rename(spec.directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    chain = _load(spec.directory)
    assert chain is not None
    return chain


def _build(
    binaries: CoreBinaries, spec: ChainSpec, datadir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    say(
        f"Building a regtest chain of {spec.blocks:,} blocks x {spec.txs:,} transactions "
        f"(once; cached in {spec.directory}) ..."
    )
    started = time.monotonic()
    pool = _CoinPool(random.Random(SEED))  # noqa: S311 (a reproducible chain, not a secret)
    with RegtestNode(binaries.bitcoind, datadir, extra_args=["-disablewallet"]) as node:
        node.start()
        address = node.call("decodescript", OP_TRUE.hex())["segwit"]["address"]
        hashes = node.call("generatetoaddress", FUNDING_BLOCKS, address)
        for block_hash in hashes[:FUNDED_COINBASES]:
            coinbase = node.call("getblock", block_hash, 2)["tx"][0]
            value = round(coinbase["vout"][0]["value"] * 100_000_000)
            pool.coins.append((bytes.fromhex(coinbase["txid"])[::-1], 0, value))
        step = max(1, spec.blocks // 10)
        for block in range(1, spec.blocks + 1):
            hexes, made = _block_txs(pool, spec.txs)
            node.call("generateblock", address, hexes)
            pool.coins += made
            if block % step == 0:
                say(f"  {block:,}/{spec.blocks:,} blocks, {time.monotonic() - started:.0f} s")
        chain = node.call("getblockchaininfo")
        stats = node.call("getchaintxstats")
        utxos = node.call("gettxoutsetinfo", "none")["txouts"]
        node.stop()
    return {
        "height": int(chain["blocks"]),
        "tip": str(chain["bestblockhash"]),
        "transactions": int(stats["txcount"]),
        "utxos": int(utxos),
        "size_on_disk": int(chain["size_on_disk"]),
    }
