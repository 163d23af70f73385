"""txid / wtxid / vsize derivation from raw transactions."""

from __future__ import annotations

import hashlib

import pytest

from bridge.sources.ipc.transaction import TransactionError, summarize

# The genesis block's coinbase: txid 4a5e1e4b...da33b (display order), 204 bytes.
GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04"
    "ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e"
    "206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f205"
    "2a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6"
    "bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000"
)


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def test_a_legacy_transaction() -> None:
    tx = summarize(GENESIS_COINBASE)
    assert tx.txid[::-1].hex() == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    assert tx.wtxid == tx.txid  # no witness: the same hash
    assert (tx.weight, tx.vsize) == (4 * 204, 204)


def test_a_segwit_transaction() -> None:
    """Built field by field, so the expected hashes and weight are computed here from
    the parts rather than by the code under test."""
    version, lock_time = (2).to_bytes(4, "little"), (0).to_bytes(4, "little")
    inputs = b"\x01" + b"\x11" * 32 + b"\x00\x00\x00\x00" + b"\x00" + b"\xfd\xff\xff\xff"
    script = b"\x00\x14" + b"\x22" * 20  # P2WPKH
    outputs = b"\x01" + (50_000).to_bytes(8, "little") + bytes([len(script)]) + script
    witness = b"\x02" + b"\x47" + b"\x30" * 71 + b"\x21" + b"\x02" * 33
    raw = version + b"\x00\x01" + inputs + outputs + witness + lock_time
    stripped = version + inputs + outputs + lock_time
    tx = summarize(raw)
    assert tx.txid == sha256d(stripped)
    assert tx.wtxid == sha256d(raw)
    assert tx.weight == 4 * len(stripped) + (2 + len(witness))
    assert tx.vsize == -(-tx.weight // 4)


@pytest.mark.parametrize(
    "raw",
    [b"", GENESIS_COINBASE[:-1], GENESIS_COINBASE + b"\x00", b"\x01\x00\x00\x00\xff"],
)
def test_malformed_transactions_are_refused(raw: bytes) -> None:
    with pytest.raises(TransactionError):
        summarize(raw)
