"""The C decoder must return exactly what fastavro returns, for every committed schema.

Random values of every committed schema (and of a few synthetic schemas covering what
ours do not use yet: maps, floats, general unions, recursive-free named references)
are encoded with fastavro and decoded by both paths. Mutated encodings must either be
declined by the native path (then fastavro decides) or decode to fastavro's value.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import _avro_decode
from bridge.codec.fast_decode import FastDecoder, UnsupportedSchema, compile_schema
from bridge.codec.single_object import SchemaStore, SingleObjectError, committed_schemas

PRIMITIVE_DATA: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=80),
    "string": st.text(max_size=40),
}


def _name(schema: dict[str, Any], namespace: str | None) -> tuple[str, str | None]:
    name = str(schema["name"])
    ns = schema.get("namespace", namespace)
    full = name if "." in name or not ns else f"{ns}.{name}"
    return full, full.rsplit(".", 1)[0] if "." in full else None


def data_for(
    schema: Any, named: dict[str, Any], namespace: str | None = None
) -> st.SearchStrategy[Any]:
    """Values fastavro can write for ``schema`` (named types resolved as declared)."""
    if isinstance(schema, str):
        if schema in PRIMITIVE_DATA:
            return PRIMITIVE_DATA[schema]
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        found: st.SearchStrategy[Any] = named[full] if full in named else named[schema]
        return found
    if isinstance(schema, list):
        # fastavro picks the first branch a value fits; keep branches distinguishable
        return st.one_of([data_for(branch, named, namespace) for branch in schema])
    kind = schema["type"]
    if kind in PRIMITIVE_DATA:
        return PRIMITIVE_DATA[kind]
    if kind == "array":
        return st.lists(data_for(schema["items"], named, namespace), max_size=4)
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=8), data_for(schema["values"], named, namespace), max_size=4
        )
    if kind in ("record", "enum", "fixed"):
        full, own_ns = _name(schema, namespace)
        strategy: st.SearchStrategy[Any]
        if kind == "fixed":
            strategy = st.binary(min_size=schema["size"], max_size=schema["size"])
        elif kind == "enum":
            strategy = st.sampled_from(schema["symbols"])
        else:
            fields = {f["name"]: data_for(f["type"], named, own_ns) for f in schema["fields"]}
            strategy = st.fixed_dictionaries(fields)
        named[full] = strategy
        return strategy
    return data_for(kind, named, namespace)


SYNTHETIC: list[dict[str, Any]] = [
    {
        "type": "record",
        "name": "Everything",
        "namespace": "test.synthetic",
        "fields": [
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "i", "type": "int"},
            {"name": "m", "type": {"type": "map", "values": ["null", "long", "string"]}},
            {"name": "u", "type": ["null", "boolean", "bytes", "double"]},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [
                        {"name": "h", "type": {"type": "fixed", "name": "H4", "size": 4}},
                        {"name": "tags", "type": {"type": "array", "items": "string"}},
                    ],
                },
            },
            {"name": "again", "type": {"type": "array", "items": "Inner"}},
            {"name": "h2", "type": ["null", "test.synthetic.H4"]},
            {"name": "nothing", "type": "null"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
            {"name": "empty", "type": {"type": "record", "name": "Empty", "fields": []}},
            {"name": "empties", "type": {"type": "array", "items": "Empty"}},
        ],
    }
]

COMMITTED = committed_schemas()
SYNTHETIC_STORE = SchemaStore(SYNTHETIC)
CASES = [(COMMITTED, name) for name in COMMITTED.names()] + [
    (SYNTHETIC_STORE, name) for name in SYNTHETIC_STORE.names()
]
DECODERS = {
    id(COMMITTED): FastDecoder(COMMITTED),
    id(SYNTHETIC_STORE): FastDecoder(SYNTHETIC_STORE),
}


def native_only(store: SchemaStore, value: bytes, fields: int = -1) -> tuple[int, Any] | None:
    return DECODERS[id(store)]._native.decode(value, fields)


def reference(store: SchemaStore, value: bytes) -> Any:
    try:
        return store.decode(value)[1]
    except (SingleObjectError, EOFError, ValueError, IndexError, struct.error) as error:
        return type(error)


def test_every_committed_schema_compiles() -> None:
    assert DECODERS[id(COMMITTED)].unsupported == []
    assert len(COMMITTED.names()) > 20


@pytest.mark.parametrize(("store", "name"), CASES, ids=[name for _, name in CASES])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_native_equals_fastavro(store: SchemaStore, name: str, data: st.DataObject) -> None:
    known = store.by_name(name)
    record = data.draw(data_for(known.definition, {}))
    value = store.encode(name, record)
    hit = native_only(store, value)
    assert hit is not None, "the native path must take every well-formed value"
    expected = store.decode(value)[1]
    assert hit[1] == expected
    assert type(hit[1]) is type(expected)
    assert json.dumps(hit[1], default=repr) == json.dumps(expected, default=repr)  # key order
    head = native_only(store, value, 1)
    assert head is not None
    first = known.definition["fields"][0]["name"] if known.definition["fields"] else None
    assert head[1] == ({first: expected[first]} if first else {})


@pytest.mark.parametrize(("store", "name"), CASES, ids=[name for _, name in CASES])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_values_decline_or_agree(
    store: SchemaStore, name: str, data: st.DataObject
) -> None:
    known = store.by_name(name)
    value = bytearray(store.encode(name, data.draw(data_for(known.definition, {}))))
    body = len(value) - 10
    action = data.draw(st.sampled_from(["flip", "cut", "extend", "set"]))
    if action == "flip" and body:
        at = 10 + data.draw(st.integers(0, body - 1))
        value[at] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "cut":
        del value[10 + data.draw(st.integers(0, body)) :]
    elif action == "extend":
        value += data.draw(st.binary(min_size=1, max_size=8))
    elif body:
        at = 10 + data.draw(st.integers(0, body - 1))
        value[at] = data.draw(st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF]))
    hit = native_only(store, bytes(value))
    expected = reference(store, bytes(value))
    if hit is not None:
        assert repr(hit[1]) == repr(expected)  # repr: a flipped bit can make a NaN


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    decoder = DECODERS[id(COMMITTED)]
    fp = COMMITTED.by_name(COMMITTED.names()[0]).fingerprint
    for value in (raw, b"\xc3\x01" + fp + raw):
        hit = decoder._native.decode(value)
        if hit is not None:
            assert hit[1] == reference(COMMITTED, value)


def test_fast_decoder_falls_back_to_the_store_for_what_it_declines() -> None:
    decoder = DECODERS[id(COMMITTED)]
    name = "tracebridge.bridge.DeadLetter"
    value = COMMITTED.encode(
        name,
        {
            "node_id": "n",
            "source": "USDT",
            "session_id": "s",
            "stream": None,
            "seq": None,
            "ts_wall_ns": 1,
            "reason": "r",
            "raw": b"",
        },
    )
    trailing = value + b"\x00"  # fastavro ignores trailing bytes; the native path declines
    assert decoder._native.decode(trailing) is None
    assert decoder.decode(trailing) == COMMITTED.decode(trailing)
    with pytest.raises(SingleObjectError):
        decoder.decode(b"\xc3\x01" + bytes(8))


class FakeRegistry:
    """A SchemaIdResolver over fixed ids (what a registry answers)."""

    def __init__(self, texts: dict[int, str]) -> None:
        self.texts = texts
        self.calls = 0

    def fetch_schema(self, schema_id: int) -> str:
        self.calls += 1
        return self.texts[schema_id]


def test_confluent_framed_values_decode_natively_once_the_id_is_known() -> None:
    name = "tracebridge.bridge.DeadLetter"
    known = COMMITTED.by_name(name)
    registry = FakeRegistry({7: json.dumps(known.definition, sort_keys=True)})
    store = COMMITTED.with_resolver(registry)
    decoder = FastDecoder(store)
    body = io.BytesIO()
    record = {
        "node_id": "n",
        "source": "IPC",
        "session_id": "s",
        "stream": "mempool:added",
        "seq": 3,
        "ts_wall_ns": 9,
        "reason": "why",
        "raw": b"\x01",
    }
    fastavro.schemaless_writer(body, known.parsed, record)
    value = b"\x00" + (7).to_bytes(4, "big") + body.getvalue()
    assert decoder.decode(value) == (known, record)
    assert decoder.decode(value) == (known, record)
    assert registry.calls == 1  # the second value never reached the store


def test_unsupported_schemas_are_refused_at_compile_time() -> None:
    with pytest.raises(UnsupportedSchema):
        compile_schema(
            {
                "type": "record",
                "name": "T",
                "fields": [
                    {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}
                ],
            }
        )
    with pytest.raises(UnsupportedSchema):
        compile_schema(
            {"type": "record", "name": "L", "fields": [{"name": "next", "type": ["null", "L"]}]}
        )
    with pytest.raises(ValueError, match="unsupported"):
        _avro_decode.Decoder().add(bytes(8), "decimal")
