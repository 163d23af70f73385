"""Avro schemas derived from the catalogue (the files under ``avro/`` are their output).

Mapping rules, applied to every field so no schema is written by hand:

* ``i32`` → ``int``; ``u32``, ``i64`` → ``long``; ``u64`` → ``long`` holding the same 64
  bits (values above 2**63-1 read as negative; none of Core's u64 arguments get there).
* ``bool`` → ``boolean``.
* ``hash32`` → ``fixed(32)`` in internal (little-endian) byte order, plus ``<name>_hex``,
  the usual display hex (byte-reversed), because that is what users search for.
* ``cstr`` → ``string``; an enum-valued argument → an enum with an ``UNKNOWN`` default
  plus ``<name>_raw`` (null unless the value was not in the enum, so nothing is lost
  when Bitcoin Core adds a value before the catalogue does).
* ``payload`` → ``bytes`` plus ``<name>_truncated``.
* IPC kinds: ``f64`` → ``double``, ``text`` → ``string``, ``data`` → ``bytes``,
  ``list`` → an array of the nested record.

Each schema is self-contained (the envelope and shared named types are inlined at
first use) because Avro single-object encoding fingerprints one complete schema.
"""

from __future__ import annotations

from typing import Any

from bridge.events.catalog import ALL_EVENTS
from bridge.events.envelope import (
    DEAD_LETTER_SCHEMA,
    HEARTBEAT_SCHEMA,
    NAMESPACE,
    envelope_field,
)
from bridge.events.spec import EnumSpec, EventSpec, FieldSpec, Kind

STABILITY_PROPERTY = "tracebridge.stability"
# On a field holding a peer address: the setting that may have redacted it.
REDACTION_PROPERTY = "tracebridge.redaction"
REDACTION_SETTING = "privacy.peer_addr"
_REDACTED_TEXT = (
    " Redacted when privacy.peer_addr is set: 'hmac-sha256=' + 32 hex digits (hash: "
    "HMAC-SHA256 of the host under the operator's key, first 16 bytes) or the network "
    "'a.b.c.0/24', '[2001:db8:1::]/48', '[fc00::]/8' (CJDNS), '*.onion', '*.i2p', '*' "
    "(truncate); ':port' follows only with privacy.keep_port."
)

_PRIMITIVE: dict[Kind, str] = {
    Kind.I32: "int",
    Kind.U32: "long",
    Kind.I64: "long",
    Kind.U64: "long",
    Kind.BOOL: "boolean",
    Kind.CSTR: "string",
    Kind.F64: "double",
    Kind.TEXT: "string",
    Kind.DATA: "bytes",
}


def _doc(spec: FieldSpec) -> str:
    doc = spec.doc
    if spec.unit:
        doc += f" Unit: {spec.unit}."
    if spec.kind is Kind.CSTR and spec.max_len is not None:
        doc += f" At most {spec.max_len} characters are kept ({spec.bound_provenance})."
    if spec.kind is Kind.U64:
        doc += " Unsigned 64-bit at the probe, stored with the same bits."
    if spec.address and spec.kind is not Kind.DATA:
        doc += _REDACTED_TEXT
    return doc


def _enum_schema(enum: EnumSpec, defined: set[str]) -> dict[str, Any] | str:
    full_name = f"{NAMESPACE}.{enum.name}"
    if full_name in defined:
        return full_name
    defined.add(full_name)
    return {
        "type": "enum",
        "name": enum.name,
        "namespace": NAMESPACE,
        "doc": enum.doc,
        "symbols": list(enum.symbols),
        "default": "UNKNOWN",
    }


def _hash_schema(defined: set[str]) -> dict[str, Any] | str:
    full_name = f"{NAMESPACE}.Hash32"
    if full_name in defined:
        return full_name
    defined.add(full_name)
    return {"type": "fixed", "name": "Hash32", "namespace": NAMESPACE, "size": 32}


def avro_fields(spec: FieldSpec, defined: set[str]) -> list[dict[str, Any]]:
    """The Avro field(s) one catalogue field becomes, in wire order."""
    base: dict[str, Any] = {"name": spec.name, "doc": _doc(spec)}
    if spec.unit:
        base["tracebridge.unit"] = spec.unit
    if spec.address:
        base[REDACTION_PROPERTY] = REDACTION_SETTING
    if spec.kind is Kind.HASH32:
        return [
            {**base, "type": _hash_schema(defined)},
            {
                "name": f"{spec.name}_hex",
                "type": "string",
                "doc": f"{spec.name} as display hex (byte-reversed, as RPC and explorers show it).",
            },
        ]
    if spec.kind is Kind.PAYLOAD:
        return [
            {**base, "type": "bytes"},
            {
                "name": f"{spec.name}_truncated",
                "type": "boolean",
                "doc": f"True if fewer bytes were captured than {spec.length_of} says.",
            },
        ]
    if spec.kind is Kind.LIST:
        assert spec.items is not None
        items = spec.items
        record: dict[str, Any] | str = f"{NAMESPACE}.{items.name}"
        if record not in defined:
            defined.add(str(record))
            nested: list[dict[str, Any]] = []
            for item_field in items.fields:
                nested.extend(avro_fields(item_field, defined))
            record = {
                "type": "record",
                "name": items.name,
                "namespace": NAMESPACE,
                "doc": items.doc,
                "fields": nested,
            }
        return [{**base, "type": {"type": "array", "items": record}}]
    if spec.enum is not None:
        raw_type = "string" if spec.kind is Kind.CSTR else "long"
        return [
            {**base, "type": _enum_schema(spec.enum, defined)},
            {
                "name": f"{spec.name}_raw",
                "type": ["null", raw_type],
                "default": None,
                "doc": f"The probe's value when {spec.name} is UNKNOWN, else null.",
            },
        ]
    return [{**base, "type": _PRIMITIVE[spec.kind]}]


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """The complete Avro schema of one event record."""
    defined: set[str] = set()
    fields: list[dict[str, Any]] = [envelope_field()]
    for field_spec in spec.fields:
        fields.extend(avro_fields(field_spec, defined))
    return {
        "type": "record",
        "name": spec.record_name,
        "namespace": f"{NAMESPACE}.{spec.subsystem}",
        "doc": spec.doc,
        STABILITY_PROPERTY: spec.stability.value,
        "tracebridge.tracepoint": spec.name,
        "tracebridge.sources": list(spec.sources),
        "tracebridge.since": spec.since,
        "fields": fields,
    }


def schema_files() -> dict[str, dict[str, Any]]:
    """Every schema the bridge writes, keyed by its path under ``avro/``."""
    files: dict[str, dict[str, Any]] = {}
    for spec in ALL_EVENTS:
        files[f"{spec.subsystem}/{spec.record_name}.avsc"] = event_schema(spec)
    files["bridge/Heartbeat.avsc"] = HEARTBEAT_SCHEMA
    files["bridge/DeadLetter.avsc"] = DEAD_LETTER_SCHEMA
    return files


def full_name(schema: dict[str, Any]) -> str:
    """``namespace.name`` of a record schema."""
    return f"{schema['namespace']}.{schema['name']}"
