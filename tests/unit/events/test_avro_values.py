"""The catalogue-value -> Avro-value rules shared by the reference decoder and the IPC
source's Python-encoded bodies."""

from __future__ import annotations

import pytest

from bridge.events.avro_values import as_long, to_avro
from bridge.events.catalog import BY_NAME


def test_a_hash_becomes_bytes_and_display_hex() -> None:
    spec = BY_NAME["node:block_tip"]
    values = {f.name: 0 for f in spec.fields} | {"block_hash": bytes(range(32))}
    out = to_avro(spec.fields, values)
    assert out["block_hash"] == bytes(range(32))
    assert out["block_hash_hex"] == bytes(range(32))[::-1].hex()


@pytest.mark.parametrize("size", [0, 31, 33])
def test_a_hash_of_the_wrong_size_is_refused_naming_the_field(size: int) -> None:
    spec = BY_NAME["node:block_tip"]
    values = {f.name: 0 for f in spec.fields} | {"block_hash": b"\x01" * size}
    with pytest.raises(ValueError, match=rf"^field block_hash: {size} bytes, a hash has 32$"):
        to_avro(spec.fields, values)


def test_unsigned_64_bit_values_keep_their_bits() -> None:
    assert as_long(2**64 - 1) == -1
    assert as_long(2**63) == -(2**63)
    assert as_long(5) == 5
