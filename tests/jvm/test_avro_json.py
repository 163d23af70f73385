"""The JSON read-back that test_jvm_readers relies on: exact where it must be, strict
where JSON is loose, so a JVM reader that got a value wrong cannot pass by accident."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bridge.codec.single_object import committed_schemas
from tests.support.avro_json import (
    AvroJsonReader,
    JsonShapeError,
    comparable,
    from_base64,
    from_hex,
)

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "R",
    "namespace": "t",
    "fields": [
        {"name": "h", "type": {"type": "fixed", "name": "Hash", "size": 2}},
        {"name": "again", "type": "t.Hash"},
        {"name": "b", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "o", "type": ["null", "long"]},
        {"name": "d", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "xs", "type": {"type": "array", "items": "int"}},
    ],
}
GOOD = {
    "h": "0aff",
    "again": "0001",
    "b": "",
    "e": "B",
    "o": None,
    "d": "NaN",
    "flag": True,
    "xs": [1, -2],
}


def read(value: dict[str, Any]) -> Any:
    return AvroJsonReader(SCHEMA, from_hex).read(value)


def test_values_come_back_as_fastavro_decodes_them() -> None:
    value = read(GOOD)
    assert value["h"] == b"\x0a\xff"
    assert value["again"] == b"\x00\x01"
    assert value["b"] == b""
    assert value["e"] == "B"
    assert value["o"] is None
    assert math.isnan(value["d"])
    assert value["xs"] == [1, -2]
    assert read({**GOOD, "o": 2**63 - 1})["o"] == 2**63 - 1


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("h", "0aff00"),  # fixed(2) with 3 bytes
        ("h", "0AFF"),  # TopicDump writes lowercase hex
        ("e", "C"),  # not a symbol
        ("o", 2**63),  # beyond a long
        ("o", True),  # a boolean is not a long, though Python says True == 1
        ("flag", 1),  # and an integer is not a boolean
        ("d", "1.5"),  # a number as text
        ("xs", [1, 2**31]),  # beyond an int
    ],
)
def test_a_value_of_the_wrong_shape_is_refused(field: str, bad: Any) -> None:
    with pytest.raises(JsonShapeError, match=rf"\$\.{field}"):
        read({**GOOD, field: bad})


def test_a_missing_or_extra_field_is_refused() -> None:
    with pytest.raises(JsonShapeError):
        read({k: v for k, v in GOOD.items() if k != "b"})
    with pytest.raises(JsonShapeError):
        read({**GOOD, "kafka_offset": 3})


def test_connects_base64_and_doubles_by_their_bits() -> None:
    assert from_base64("AQI=") == b"\x01\x02"
    assert comparable({"d": math.nan}) == comparable({"d": float("nan")})
    assert comparable({"d": 0.1}) != comparable({"d": 0.1 + 2**-56})
    assert comparable([0.0]) != comparable([-0.0])


def test_every_committed_schema_can_be_read() -> None:
    """Every named type the committed schemas reference is resolved (Hash32 and the like)."""
    store = committed_schemas()
    for name in store.names():
        reader = AvroJsonReader(store.by_name(name).definition, from_hex)
        with pytest.raises(JsonShapeError, match=r"^\$: fields"):
            reader.read({})
