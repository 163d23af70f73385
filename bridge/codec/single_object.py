"""Avro single-object encoding against the committed ``avro/`` schemas.

Every value the bridge writes is ``C3 01`` + the schema's 8-byte CRC-64-AVRO
fingerprint (little-endian) + the Avro binary body, so any consumer holding the
``avro/`` files can decode any record without a schema registry, and a record written
under an older schema is recognised by its fingerprint.

The committed files, not the catalogue, are what this module loads: they are the
contract with consumers, and ``tests/unit/events/test_codegen.py`` keeps them equal to
what the catalogue generates.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastavro
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from bridge.resources import avro_dir

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10


class SingleObjectError(ValueError):
    """A value that is not single-object encoded, or whose schema is unknown."""


def fingerprint(schema: Mapping[str, Any]) -> bytes:
    """CRC-64-AVRO fingerprint of the schema's canonical form, as the 8 wire bytes."""
    parsed = fastavro.parse_schema(dict(schema))
    return bytes.fromhex(avro_fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


@dataclass(frozen=True)
class KnownSchema:
    """One committed schema, ready to encode and decode with."""

    full_name: str
    fingerprint: bytes
    stability: str
    definition: dict[str, Any]  # as committed (docs and properties included)
    parsed: Any  # fastavro's parsed form

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


class SchemaStore:
    """The committed schemas, by full name and by fingerprint."""

    def __init__(self, definitions: list[dict[str, Any]]) -> None:
        self._by_name: dict[str, KnownSchema] = {}
        self._by_fingerprint: dict[bytes, KnownSchema] = {}
        for definition in definitions:
            known = KnownSchema(
                full_name=f"{definition['namespace']}.{definition['name']}",
                fingerprint=fingerprint(definition),
                stability=str(definition.get("tracebridge.stability", "experimental")),
                definition=definition,
                parsed=fastavro.parse_schema(definition),
            )
            self._by_name[known.full_name] = known
            self._by_fingerprint[known.fingerprint] = known

    def by_name(self, full_name: str) -> KnownSchema:
        try:
            return self._by_name[full_name]
        except KeyError:
            raise SingleObjectError(f"no committed schema named {full_name}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def encode(self, full_name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encode ``record`` (used for the bridge's own, low-rate records)."""
        known = self.by_name(full_name)
        buffer = io.BytesIO()
        buffer.write(known.header)
        fastavro.schemaless_writer(buffer, known.parsed, dict(record))
        return buffer.getvalue()

    def decode(self, value: bytes) -> tuple[KnownSchema, dict[str, Any]]:
        """Decode one value; raise SingleObjectError for foreign or unknown data."""
        if len(value) < HEADER_SIZE or value[:2] != MAGIC:
            raise SingleObjectError("not Avro single-object encoding (no C3 01 marker)")
        known = self._by_fingerprint.get(value[2:HEADER_SIZE])
        if known is None:
            raise SingleObjectError(f"unknown schema fingerprint {value[2:HEADER_SIZE].hex()}")
        record = fastavro.schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), known.parsed, None)
        if not isinstance(record, dict):
            raise SingleObjectError(f"{known.full_name} did not decode to a record")
        return known, record


@cache
def committed_schemas() -> SchemaStore:
    """Load every ``avro/**/*.avsc`` once per process."""
    definitions = [json.loads(path.read_text()) for path in sorted(avro_dir().rglob("*.avsc"))]
    return SchemaStore(definitions)
