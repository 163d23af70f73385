"""Avro bodies of IPC-only events, encoded in Python.

An Avro record is the concatenation of its fields' encodings, so a record is the
native encoder's envelope followed by the encoding of "the same record without its
envelope". This module derives that envelope-less schema from the committed one and
encodes with fastavro; the native encoder prepends framing and envelope
(``Encoder.encode_body``). IPC-only events arrive at notification rates (tips, peers,
mempool changes), where fastavro's few microseconds do not matter, and their nested
lists would cost a lot of C for no gain.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache
from typing import Any

import fastavro

from bridge.codec.single_object import SchemaStore


class BodyEncoder:
    """Encodes the fields after the envelope, per committed record schema."""

    def __init__(self, store: SchemaStore) -> None:
        self._store = store

    @cache  # noqa: B019 (one encoder per process; the store is immutable)
    def _parsed(self, full_name: str) -> Any:
        definition = dict(self._store.by_name(full_name).definition)
        fields = definition["fields"]
        if not fields or fields[0]["name"] != "envelope":
            raise ValueError(f"{full_name} does not start with the envelope")
        # The envelope's named types (Source, LossTotals) are defined inside it; the body
        # must not depend on them, which holds because event fields never use them.
        definition["fields"] = fields[1:]
        definition["name"] = definition["name"] + "Body"
        return fastavro.parse_schema(definition, named_schemas={})

    def encode(self, full_name: str, fields: Mapping[str, Any]) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._parsed(full_name), dict(fields))
        return buffer.getvalue()
