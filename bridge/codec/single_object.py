"""Avro single-object encoding against the committed ``avro/`` schemas.

Every value the bridge writes is ``C3 01`` + the schema's 8-byte CRC-64-AVRO
fingerprint (little-endian) + the Avro binary body, so any consumer holding the
``avro/`` files can decode any record without a schema registry, and a record written
under an older schema is recognised by its fingerprint.

The committed files, not the catalogue, are what this module loads: they are the
contract with consumers, and ``tests/unit/events/test_codegen.py`` keeps them equal to
what the catalogue generates.

In schema registry mode (``bridge.codec.registry``) values carry the Confluent wire
format instead (``00`` + a 4-byte big-endian schema id). :meth:`SchemaStore.decode`
tells the two apart by the first byte, so a topic written partly in each mode (a bridge
switched to a registry mid-stream) still decodes; an id is resolved through a
:class:`SchemaIdResolver` (the registry), once per schema.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import fastavro
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from bridge.resources import current_schema_files

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10

# Confluent wire format: magic 0, then the schema id, 4 bytes big-endian.
CONFLUENT_MAGIC = 0x00
CONFLUENT_HEADER_SIZE = 5


class SingleObjectError(ValueError):
    """A value that is not single-object encoded, or whose schema is unknown."""


class SchemaIdResolver(Protocol):
    """Gives the writer schema of a Confluent schema id (``bridge.codec.registry``).

    Implementations fetch from the registry once per id and raise SingleObjectError (or a
    subclass) when the id cannot be resolved; the store does the matching and caching.
    """

    def fetch_schema(self, schema_id: int) -> str:
        """The Avro schema JSON the registry holds for ``schema_id``."""
        ...


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
    framing: bytes | None = None  # registry mode: 00 + schema id (see with_framing)

    @property
    def header(self) -> bytes:
        """The bytes every value of this schema starts with."""
        return self.framing if self.framing is not None else MAGIC + self.fingerprint


class SchemaStore:
    """The committed schemas, by full name and by fingerprint."""

    def __init__(
        self, definitions: list[dict[str, Any]], resolver: SchemaIdResolver | None = None
    ) -> None:
        self._by_name: dict[str, KnownSchema] = {}
        self._by_fingerprint: dict[bytes, KnownSchema] = {}
        self.resolver = resolver
        # Registry schema text -> schema; shared by copies from with_resolver().
        self._by_registry_text: dict[str, KnownSchema] = {}
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

    def with_framing(self, framing: Mapping[str, bytes]) -> SchemaStore:
        """This store, writing the named schemas with other framing (registry mode:
        ``00`` + schema id). Everything that encodes asks ``KnownSchema.header``, so the
        native encoder and the bridge's own records follow without knowing why."""
        copy = object.__new__(SchemaStore)
        copy.__dict__.update(self.__dict__)
        copy._by_name = {
            name: dataclasses.replace(known, framing=framing[name]) if name in framing else known
            for name, known in self._by_name.items()
        }
        return copy

    def with_resolver(self, resolver: SchemaIdResolver) -> SchemaStore:
        """This store, decoding Confluent-framed values through ``resolver`` by default.

        The copy shares the committed schemas (nothing is parsed again), so it can be
        handed to readers such as ``bridge.consume.TopicReader(store=...)``.
        """
        copy = object.__new__(SchemaStore)
        copy.__dict__.update(self.__dict__)
        copy.resolver = resolver
        return copy

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

    def decode(
        self, value: bytes, resolver: SchemaIdResolver | None = None
    ) -> tuple[KnownSchema, dict[str, Any]]:
        """Decode one value, single-object (``C3 01``) or Confluent-framed (``00``).

        A Confluent schema id is resolved through ``resolver`` (default: the store's
        own, see :meth:`with_resolver`). Raises SingleObjectError for foreign or unknown
        data, saying which of the two encodings it was and what is missing.
        """
        if value[:2] == MAGIC:
            if len(value) < HEADER_SIZE:
                raise SingleObjectError("truncated single-object header (C3 01 + 8 bytes)")
            known = self._by_fingerprint.get(value[2:HEADER_SIZE])
            if known is None:
                raise SingleObjectError(f"unknown schema fingerprint {value[2:HEADER_SIZE].hex()}")
            body = value[HEADER_SIZE:]
        elif value[:1] == bytes([CONFLUENT_MAGIC]):
            known = self._resolve_confluent(value, resolver or self.resolver)
            body = value[CONFLUENT_HEADER_SIZE:]
        else:
            raise SingleObjectError(
                "neither Avro single-object encoding (C3 01) nor the Confluent wire format "
                f"(00): the value starts with {value[:2].hex() or 'nothing'}"
            )
        try:
            record = fastavro.schemaless_reader(io.BytesIO(body), known.parsed, None)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError) as error:
            raise SingleObjectError(
                f"{known.full_name}: the Avro body is corrupt ({error})"
            ) from None
        if not isinstance(record, dict):
            raise SingleObjectError(f"{known.full_name} did not decode to a record")
        return known, record

    def _resolve_confluent(self, value: bytes, resolver: SchemaIdResolver | None) -> KnownSchema:
        """The schema of a Confluent-framed value: committed if its fingerprint matches."""
        if len(value) < CONFLUENT_HEADER_SIZE:
            raise SingleObjectError("truncated Confluent wire format header (00 + 4-byte id)")
        schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_SIZE], "big")
        if resolver is None:
            raise SingleObjectError(
                f"Confluent wire format (schema id {schema_id}) needs a schema registry to "
                "decode; none is configured"
            )
        text = resolver.fetch_schema(schema_id)
        known = self._by_registry_text.get(text)
        if known is None:
            known = self._known_for_registry_schema(schema_id, text)
            self._by_registry_text[text] = known
        return known

    def _known_for_registry_schema(self, schema_id: int, text: str) -> KnownSchema:
        """Match a registry's schema to a committed one by canonical form, else take it as is.

        Registries re-serialise what they store (Apicurio reorders keys), so the text
        never equals the committed file; the parsing canonical form's fingerprint does.
        """
        try:
            definition = json.loads(text)
            schema_fp = fingerprint(definition)
        except (ValueError, TypeError, KeyError) as error:
            raise SingleObjectError(
                f"schema id {schema_id}: the registry's schema is not valid Avro ({error})"
            ) from None
        committed = self._by_fingerprint.get(schema_fp)
        if committed is not None:
            return committed
        if not isinstance(definition, dict) or "name" not in definition:
            raise SingleObjectError(f"schema id {schema_id} is not an Avro record schema")
        name = str(definition["name"])
        namespace = definition.get("namespace")
        return KnownSchema(
            full_name=name if "." in name or not namespace else f"{namespace}.{name}",
            fingerprint=schema_fp,
            stability=str(definition.get("tracebridge.stability", "unknown")),
            definition=definition,
            parsed=fastavro.parse_schema(definition),
        )


@cache
def committed_schemas() -> SchemaStore:
    """Load every ``avro/**/*.avsc`` once per process."""
    definitions = [json.loads(path.read_text()) for path in current_schema_files()]
    return SchemaStore(definitions)
