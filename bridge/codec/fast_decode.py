"""Fast decoding of committed-schema records: the C decoder first, fastavro as the authority.

Replay and audit read millions of records; fastavro's ~5.5 us per record caps one
process near 180k records/s. :mod:`bridge.codec._avro_decode` walks a node tree
compiled here from each committed ``.avsc`` and builds the same Python values in a
fraction of that. Whatever it is not sure about (an unknown fingerprint, a framing
other than single-object, a body the tree does not describe exactly) it hands back,
and :meth:`SchemaStore.decode` decodes it, so the output is always fastavro's.

The compiler covers what Avro schemas can say except logical types (fastavro turns
those into datetimes, decimals, UUIDs); a schema using one is simply left to fastavro.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.codec import _avro_decode
from bridge.codec.single_object import KnownSchema, SchemaStore

# Confluent wire format: 00 + 4-byte big-endian schema id (bridge/codec/registry.py).
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = 5

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class UnsupportedSchema(ValueError):
    """A schema the native decoder does not compile (fastavro decodes it instead)."""


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class _Compiler:
    """Avro schema JSON -> the decoder's node tree, resolving named types."""

    def __init__(self) -> None:
        self.named: dict[str, _avro_decode.Tree] = {}
        self._defining: set[str] = set()

    def compile(self, schema: Any, namespace: str | None) -> _avro_decode.Tree:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return schema
            for candidate in (_full_name(schema, namespace), schema):
                if candidate in self._defining:
                    raise UnsupportedSchema(f"recursive type {candidate}")
                if candidate in self.named:
                    return self.named[candidate]
            raise UnsupportedSchema(f"unknown type name {schema!r}")
        if isinstance(schema, list):
            return ("union", tuple(self.compile(branch, namespace) for branch in schema))
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"not a schema: {schema!r}")
        if "logicalType" in schema:
            raise UnsupportedSchema(f"logical type {schema['logicalType']!r}")
        kind = schema.get("type")
        if kind in PRIMITIVES:
            return str(kind)
        if kind == "array":
            return ("array", self.compile(schema["items"], namespace))
        if kind == "map":
            return ("map", self.compile(schema["values"], namespace))
        if kind in ("record", "error", "enum", "fixed"):
            return self._named(schema, namespace)
        return self.compile(kind, namespace)  # {"type": "tracebridge.Hash32"} or nested

    def _named(self, schema: Mapping[str, Any], namespace: str | None) -> _avro_decode.Tree:
        own_namespace = schema.get("namespace", namespace)
        name = _full_name(str(schema["name"]), own_namespace)
        if "." in name:
            own_namespace = name.rsplit(".", 1)[0]
        tree: _avro_decode.Tree
        if schema["type"] == "fixed":
            tree = ("fixed", int(schema["size"]))
        elif schema["type"] == "enum":
            tree = ("enum", tuple(str(symbol) for symbol in schema["symbols"]))
        else:
            self._defining.add(name)
            fields = tuple(
                (str(f["name"]), self.compile(f["type"], own_namespace)) for f in schema["fields"]
            )
            self._defining.discard(name)
            tree = ("record", fields)
        self.named[name] = tree
        return tree


def compile_schema(definition: Mapping[str, Any]) -> _avro_decode.Tree:
    """The node tree of one schema; raises UnsupportedSchema for what it does not cover."""
    return _Compiler().compile(dict(definition), None)


class FastDecoder:
    """Decode values like :meth:`SchemaStore.decode`, natively where it can.

    Both framings are detected per value, as the store does. A Confluent-framed value
    (``00`` + schema id) goes through the store first; once the store has matched that
    id to a committed schema (same parsing canonical form, hence the same binary
    layout), later values with the id decode natively too.
    """

    def __init__(self, store: SchemaStore, *, native: bool = True) -> None:
        """``native=False`` decodes everything with fastavro (to compare, or to rule the
        C decoder out)."""
        self.store = store
        self._native = _avro_decode.Decoder()
        self._schemas: list[KnownSchema] = []
        self._index_by_fingerprint: dict[bytes, int] = {}
        self._index_by_confluent_prefix: dict[bytes, int] = {}
        self.unsupported: list[str] = []
        for name in store.names() if native else ():
            known = store.by_name(name)
            try:
                tree = compile_schema(known.definition)
            except UnsupportedSchema:
                self.unsupported.append(name)
                continue
            index = self._native.add(known.fingerprint, tree)
            assert index == len(self._schemas)
            self._schemas.append(known)
            self._index_by_fingerprint[known.fingerprint] = index

    def decode(self, value: bytes, fields: int = -1) -> tuple[KnownSchema, dict[str, Any]]:
        """Schema and record; raises what SchemaStore.decode raises.

        With ``fields >= 0`` only the first ``fields`` fields of the record are decoded
        (1: the envelope, which is all an audit needs); a value the native path declines
        is decoded whole by the store, so the caller may get more, never less.
        """
        hit = self._native.decode(value, fields)
        if hit is not None:
            return self._schemas[hit[0]], hit[1]
        if value[:1] == CONFLUENT_MAGIC:
            index = self._index_by_confluent_prefix.get(value[:CONFLUENT_HEADER_SIZE])
            if index is not None:
                body = self._native.decode_body(index, value, CONFLUENT_HEADER_SIZE, fields)
                if body is not None:
                    return self._schemas[index], body
            known, record = self.store.decode(value)
            committed = self._index_by_fingerprint.get(known.fingerprint)
            if committed is not None:  # same canonical form: the same binary layout
                self._index_by_confluent_prefix[value[:CONFLUENT_HEADER_SIZE]] = committed
            return known, record
        return self.store.decode(value)
