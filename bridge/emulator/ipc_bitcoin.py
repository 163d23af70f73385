"""Real Bitcoin transactions and blocks for the emulated node's chain notifications.

ChainNotifications carries serialized transactions and blocks, not txids, so the bridge
must derive txid, wtxid and vsize itself. To test that, the emulator sends well-formed
BIP144 transactions (legacy, P2WPKH, P2WSH, P2TR, mixed) and regtest blocks whose
header hash, merkle root, witness commitment and proof of work are right, and it
computes txid, wtxid, weight and vsize here, independently of the bridge.

Hashes are bytes in internal byte order (the order on the wire); reverse them for the
hex that ``bitcoin-cli`` prints.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "MAX_MONEY",
    "Block",
    "ChainSim",
    "Tx",
    "TxFactory",
    "compact_size",
    "sha256d",
]

MAX_MONEY: Final = 21_000_000 * 100_000_000
REGTEST_BITS: Final = 0x207FFFFF
# Regtest genesis (chainparams.cpp): hash 0f9188f1...2206 when displayed.
GENESIS_TIME: Final = 1296688602
GENESIS_NONCE: Final = 2
GENESIS_MERKLE: Final = bytes.fromhex(
    "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
)[::-1]
GENESIS_HASH_HEX: Final = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
# Blocks after genesis get deterministic times from here, 10 minutes apart.
BASE_TIME: Final = 1_750_000_000
# Regtest halves the subsidy every 150 blocks.
HALVING_INTERVAL: Final = 150
# CBlockLocator serializes a dummy version first (DUMMY_VERSION in primitives/block.h).
LOCATOR_VERSION: Final = 70016
WITNESS_COMMITMENT_HEADER: Final = bytes.fromhex("aa21a9ed")


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, Bitcoin's hash for txids and block hashes."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def compact_size(n: int) -> bytes:
    """Bitcoin's CompactSize length prefix."""
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _push(data: bytes) -> bytes:
    """A minimal script push of up to 75 bytes (enough for signatures and keys)."""
    assert len(data) <= 75
    return bytes([len(data)]) + data


@dataclass(frozen=True, slots=True)
class TxIn:
    prev_hash: bytes
    prev_n: int
    script_sig: bytes
    sequence: int
    witness: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class Tx:
    """A serialized transaction with the facts a client should derive from ``raw``."""

    raw: bytes
    txid: bytes
    wtxid: bytes
    weight: int
    vsize: int
    segwit: bool
    kind: str

    @classmethod
    def build(
        cls,
        version: int,
        ins: Sequence[TxIn],
        outs: Sequence[TxOut],
        locktime: int,
        kind: str,
    ) -> Tx:
        """Serialize (BIP144 when any input has a witness) and derive the hashes."""
        body = bytearray(compact_size(len(ins)))
        for i in ins:
            body += i.prev_hash + i.prev_n.to_bytes(4, "little")
            body += compact_size(len(i.script_sig)) + i.script_sig
            body += i.sequence.to_bytes(4, "little")
        body += compact_size(len(outs))
        for o in outs:
            body += o.value.to_bytes(8, "little", signed=True)
            body += compact_size(len(o.script_pubkey)) + o.script_pubkey
        head = version.to_bytes(4, "little", signed=True)
        tail = locktime.to_bytes(4, "little")
        stripped = head + bytes(body) + tail
        segwit = any(i.witness for i in ins)
        if segwit:
            wit = bytearray()
            for i in ins:
                wit += compact_size(len(i.witness))
                for item in i.witness:
                    wit += compact_size(len(item)) + item
            raw = head + b"\x00\x01" + bytes(body) + bytes(wit) + tail
        else:
            raw = stripped
        weight = 3 * len(stripped) + len(raw)
        return cls(
            raw=raw,
            txid=sha256d(stripped),
            wtxid=sha256d(raw),
            weight=weight,
            vsize=(weight + 3) // 4,
            segwit=segwit,
            kind=kind,
        )


def _merkle_root(hashes: Sequence[bytes]) -> bytes:
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[k] + level[k + 1]) for k in range(0, len(level), 2)]
    return level[0]


class TxFactory:
    """Makes a deterministic stream of well-formed transactions.

    ``edge`` cycles through shapes chosen for a parser's boundaries (CompactSize 0xfd
    for outputs and witness items, empty witness stacks next to full ones, version 3,
    maximal amounts and locktime); ``random`` draws input/output types and counts.
    """

    def __init__(self, values: str, rng: random.Random) -> None:
        self._edge = values == "edge"
        self._rng = rng
        self._n = 0

    def _bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)

    def _sig(self) -> bytes:
        # DER-shaped ECDSA signature plus SIGHASH_ALL; 71..73 bytes like real ones.
        return b"\x30" + self._bytes(self._rng.choice((69, 70, 71)) - 1) + b"\x01"

    def _pubkey(self) -> bytes:
        return bytes([2 + (self._rng.getrandbits(1))]) + self._bytes(32)

    def _outpoint(self) -> tuple[bytes, int]:
        return self._bytes(32), self._rng.randrange(0, 4)

    def _spk(self, kind: str) -> bytes:
        if kind == "p2pkh":
            return b"\x76\xa9\x14" + self._bytes(20) + b"\x88\xac"
        if kind == "p2wpkh":
            return b"\x00\x14" + self._bytes(20)
        if kind == "p2wsh":
            return b"\x00\x20" + self._bytes(32)
        if kind == "p2tr":
            return b"\x51\x20" + self._bytes(32)
        return b"\x6a\x08" + self._bytes(8)  # OP_RETURN

    def _input(self, kind: str, sequence: int = 0xFFFFFFFF) -> TxIn:
        h, n = self._outpoint()
        if kind == "p2pkh":
            return TxIn(h, n, _push(self._sig()) + _push(self._pubkey()), sequence)
        if kind == "p2wpkh":
            return TxIn(h, n, b"", sequence, (self._sig(), self._pubkey()))
        if kind == "p2tr":
            return TxIn(h, n, b"", sequence, (self._bytes(64),))
        # p2wsh 2-of-2 multisig: the empty item is the CHECKMULTISIG dummy.
        script = b"\x52" + _push(self._pubkey()) + _push(self._pubkey()) + b"\x52\xae"
        return TxIn(h, n, b"", sequence, (b"", self._sig(), self._sig(), script))

    def next(self) -> Tx:
        """The next transaction of the stream."""
        i = self._n
        self._n += 1
        return self._edge_tx(i) if self._edge else self._random_tx()

    def _edge_tx(self, i: int) -> Tx:
        shape = i % 8
        val = 10_000 + i
        if shape == 0:
            return Tx.build(
                1,
                [self._input("p2pkh")],
                [TxOut(val, self._spk("p2pkh")), TxOut(val + 1, self._spk("p2wpkh"))],
                0,
                "legacy-p2pkh",
            )
        if shape == 1:
            return Tx.build(
                2,
                [self._input("p2wpkh", 0xFFFFFFFD)],
                [TxOut(val, self._spk("p2wpkh"))],
                0,
                "p2wpkh",
            )
        if shape == 2:
            # A legacy input (empty witness stack) next to a segwit one.
            ins = [self._input("p2pkh"), self._input("p2wpkh")]
            outs = [
                TxOut(val, self._spk("p2tr")),
                TxOut(val, self._spk("p2wsh")),
                TxOut(0, self._spk("op_return")),
            ]
            return Tx.build(2, ins, outs, 800_000, "mixed")
        if shape == 3:
            return Tx.build(
                3, [self._input("p2tr", 0)], [TxOut(val, self._spk("p2tr"))], 0, "p2tr-v3"
            )
        if shape == 4:
            # 253 outputs: the output count needs a 3-byte CompactSize.
            outs = [TxOut(546 + k, self._spk("p2wpkh")) for k in range(253)]
            return Tx.build(2, [self._input("p2pkh")], outs, 0, "253-outputs")
        if shape == 5:
            # A 300-byte witness script: a witness item with a 3-byte CompactSize.
            h, n = self._outpoint()
            script = b"\x4d" + (296).to_bytes(2, "little") + self._bytes(296) + b"\x75"
            assert len(script) == 300
            tin = TxIn(h, n, b"", 0xFFFFFFFF, (self._sig(), b"\x01", script))
            return Tx.build(2, [tin], [TxOut(val, self._spk("p2wsh"))], 0, "big-witness-item")
        if shape == 6:
            return Tx.build(
                2,
                [self._input("p2wpkh", 0xFFFFFFFE)],
                [TxOut(MAX_MONEY, self._spk("p2wpkh"))],
                0xFFFFFFFF,
                "max-values",
            )
        return Tx.build(
            2,
            [self._input("p2wsh"), self._input("p2wpkh"), self._input("p2tr")],
            [TxOut(val, self._spk("p2wsh")), TxOut(val, self._spk("p2pkh"))],
            0,
            "three-witness-inputs",
        )

    def _random_tx(self) -> Tx:
        rng = self._rng
        kinds = ("p2pkh", "p2wpkh", "p2tr", "p2wsh")
        ins = [
            self._input(rng.choice(kinds), rng.choice((0xFFFFFFFF, 0xFFFFFFFD, 0)))
            for _ in range(rng.randint(1, 4))
        ]
        outs = [
            TxOut(rng.randint(546, 50_000_000), self._spk(rng.choice((*kinds, "op_return"))))
            for _ in range(rng.randint(1, 5))
        ]
        return Tx.build(rng.choice((1, 2, 2, 3)), ins, outs, rng.choice((0, 0, 850_000)), "random")


@dataclass(frozen=True, slots=True)
class Block:
    """A connected (or disconnected) block as the node describes it in BlockInfo."""

    hash: bytes
    prev_hash: bytes
    height: int
    time: int
    data: bytes
    txs: tuple[Tx, ...]
    file_number: int
    data_pos: int


@dataclass
class ChainSim:
    """The emulated node's chain: regtest genesis, then deterministic blocks.

    Mining, RPC, the chain and node streams and the polling methods all read this one
    object, so what a client polls agrees with what it is notified of.
    ``on_tip_change`` callbacks run after every connect/disconnect.
    """

    seed: int
    start_height: int = 100
    hashes: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    blocks: dict[int, Block] = field(default_factory=dict)
    mempool: list[Tx] = field(default_factory=list)
    on_tip_change: list[Callable[[], None]] = field(default_factory=list)
    _data_pos: int = 8
    _extra: int = 0

    def __post_init__(self) -> None:
        header = (
            (1).to_bytes(4, "little")
            + bytes(32)
            + GENESIS_MERKLE
            + GENESIS_TIME.to_bytes(4, "little")
            + REGTEST_BITS.to_bytes(4, "little")
            + GENESIS_NONCE.to_bytes(4, "little")
        )
        genesis = sha256d(header)
        assert genesis[::-1].hex() == GENESIS_HASH_HEX, "regtest genesis header is wrong"
        self.hashes = [genesis]
        self.times = [GENESIS_TIME]
        for _ in range(self.start_height):
            self.connect_block([])

    @property
    def height(self) -> int:
        """Height of the tip."""
        return len(self.hashes) - 1

    @property
    def tip(self) -> bytes:
        """Hash of the tip (internal byte order)."""
        return self.hashes[-1]

    @property
    def tip_time(self) -> int:
        return self.times[-1]

    def chain_time_max(self) -> int:
        """Like CBlockIndex::nTimeMax: the largest block time up to the tip."""
        return max(self.times)

    def block_hash(self, height: int) -> bytes | None:
        return self.hashes[height] if 0 <= height <= self.height else None

    def locator(self) -> bytes:
        """A serialized CBlockLocator of the tip (dummy version, then hashes)."""
        heights: list[int] = []
        step, h = 1, self.height
        while h > 0:
            heights.append(h)
            if len(heights) >= 10:
                step *= 2
            h -= step
        heights.append(0)
        out = LOCATOR_VERSION.to_bytes(4, "little", signed=True) + compact_size(len(heights))
        return out + b"".join(self.hashes[x] for x in heights)

    def _coinbase(self, height: int, witness_root: bytes | None) -> Tx:
        self._extra += 1
        height_push = height.to_bytes((height.bit_length() + 8) // 8, "little")
        extranonce = ((self.seed & 0xFFFFFFFF) << 32 | self._extra).to_bytes(8, "little")
        script_sig = _push(height_push) + _push(extranonce)
        subsidy = (50 * 100_000_000) >> min(height // HALVING_INTERVAL, 63)
        outs = [TxOut(subsidy, b"\x00\x14" + sha256d(b"miner" + height_push)[:20])]
        witness: tuple[bytes, ...] = ()
        if witness_root is not None:
            commitment = sha256d(witness_root + bytes(32))
            outs.append(TxOut(0, b"\x6a\x24" + WITNESS_COMMITMENT_HEADER + commitment))
            witness = (bytes(32),)
        tin = TxIn(bytes(32), 0xFFFFFFFF, script_sig, 0xFFFFFFFF, witness)
        return Tx.build(2, [tin], outs, 0, "coinbase")

    def make_block(self, txs: Sequence[Tx]) -> Block:
        """Build (not connect) the next block on the tip containing ``txs``."""
        height = self.height + 1
        witness_root = None
        if any(t.segwit for t in txs):
            witness_root = _merkle_root([bytes(32), *(t.wtxid for t in txs)])
        coinbase = self._coinbase(height, witness_root)
        all_txs = (coinbase, *txs)
        merkle = _merkle_root([t.txid for t in all_txs])
        when = BASE_TIME + 600 * height
        prefix = (
            (0x20000000).to_bytes(4, "little")
            + self.tip
            + merkle
            + when.to_bytes(4, "little")
            + REGTEST_BITS.to_bytes(4, "little")
        )
        target = 0x7FFFFF << (8 * (0x20 - 3))
        nonce = 0
        while True:  # regtest proof of work: about two tries
            header = prefix + nonce.to_bytes(4, "little")
            block_hash = sha256d(header)
            if int.from_bytes(block_hash, "little") <= target:
                break
            nonce += 1
        data = header + compact_size(len(all_txs)) + b"".join(t.raw for t in all_txs)
        return Block(
            hash=block_hash,
            prev_hash=self.tip,
            height=height,
            time=when,
            data=data,
            txs=all_txs,
            file_number=0,
            data_pos=self._data_pos,
        )

    def connect_block(self, txs: Sequence[Tx]) -> Block:
        """Mine and connect a block with ``txs`` (removed from the mempool)."""
        block = self.make_block(txs)
        self._data_pos += 8 + len(block.data)  # blk*.dat: magic + size, then the block
        self.hashes.append(block.hash)
        self.times.append(block.time)
        self.blocks[block.height] = block
        confirmed = {t.txid for t in txs}
        self.mempool = [t for t in self.mempool if t.txid not in confirmed]
        self._tip_changed()
        return block

    def disconnect_tip(self) -> Block:
        """Disconnect the tip block (its transactions do not return to the mempool)."""
        block = self.blocks.pop(self.height, None)
        if block is None:
            raise RuntimeError("cannot disconnect a block the emulator did not build")
        self.hashes.pop()
        self.times.pop()
        self._tip_changed()
        return block

    def _tip_changed(self) -> None:
        for callback in self.on_tip_change:
            callback()
