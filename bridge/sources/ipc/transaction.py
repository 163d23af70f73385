"""txid, wtxid and vsize from a serialized Bitcoin transaction.

ChainNotifications sends the raw transaction where the tracepoints send txid and vsize,
so the bridge derives what users look for. Only the framing is parsed (counts, lengths,
the segwit marker): enough to strip witnesses for the txid and to weigh the parts.
Weight = 4 x size without witnesses + witness bytes (BIP141); vsize = ceil(weight / 4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


class TransactionError(ValueError):
    """The bytes are not a well-formed serialized transaction."""


@dataclass(frozen=True)
class TxSummary:
    txid: bytes  # internal byte order, as the tracepoints pass hashes
    wtxid: bytes
    vsize: int
    weight: int


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise TransactionError(f"truncated at byte {self.at} (wanted {n} more)")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def compact_size(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        return int.from_bytes(self.take(width), "little")

    def skip_vector(self) -> None:
        self.take(self.compact_size())


def summarize(raw: bytes) -> TxSummary:
    """Parse ``raw``; raise TransactionError if it is not a transaction."""
    reader = _Reader(raw)
    version = reader.take(4)
    segwit = raw[4:6] == b"\x00\x01"
    if segwit:
        reader.take(2)
    body_start = reader.at
    for _ in range(reader.compact_size()):  # inputs
        reader.take(36)  # prevout
        reader.skip_vector()  # scriptSig
        reader.take(4)  # sequence
    for _ in range(reader.compact_size()):  # outputs
        reader.take(8)
        reader.skip_vector()
    body_end = reader.at
    if segwit:
        inputs = _Reader(raw[body_start:]).compact_size()
        for _ in range(inputs):
            for _ in range(reader.compact_size()):
                reader.skip_vector()
    lock_time = reader.take(4)
    if reader.at != len(raw):
        raise TransactionError(f"{len(raw) - reader.at} bytes after the lock time")
    stripped = version + raw[body_start:body_end] + lock_time
    witness_bytes = len(raw) - len(stripped)  # marker, flag and witness stacks
    weight = 4 * len(stripped) + witness_bytes
    return TxSummary(
        txid=_sha256d(stripped),
        wtxid=_sha256d(raw),
        vsize=(weight + 3) // 4,
        weight=weight,
    )
