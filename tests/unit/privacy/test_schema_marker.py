"""Consumers learn from the schemas which fields privacy.peer_addr may have redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from bridge.events.avro_schema import REDACTION_PROPERTY, REDACTION_SETTING, schema_files
from bridge.events.catalog import CONNECTION_TYPE
from bridge.events.spec import FieldSpec, Kind
from bridge.resources import REPO_ROOT

RELEASED = REPO_ROOT / "avro" / "released" / "0.1.0"


def _fields(schema: Any) -> list[dict[str, Any]]:
    """Every field of a record schema, nested records included."""
    out = []
    for field in schema.get("fields", []):
        out.append(field)
        inner = field["type"]
        if isinstance(inner, dict) and inner.get("type") == "array":
            inner = inner["items"]
        if isinstance(inner, dict) and inner.get("type") == "record":
            out.extend(_fields(inner))
    return out


def test_every_address_field_carries_the_marker() -> None:
    marked = {
        (path, field["name"])
        for path, schema in schema_files().items()
        for field in _fields(schema)
        if field.get(REDACTION_PROPERTY) == REDACTION_SETTING
    }
    assert ("net/InboundMessage.avsc", "peer_addr") in marked
    assert ("net/ClosedConnection.avsc", "peer_addr") in marked
    assert ("node/Peers.avsc", "addr") in marked
    assert ("node/NetworkStats.avsc", "subnet") in marked
    net = {path for path in schema_files() if path.startswith("net/")}
    # misbehaving_connection has no address; every other net record has one.
    assert {path for path, _ in marked if path.startswith("net/")} == net - {
        "net/MisbehavingConnection.avsc"
    }
    for path, name in marked:
        (field,) = [f for f in _fields(schema_files()[path]) if f["name"] == name]
        assert "privacy.peer_addr" in field["doc"], (path, name)


@pytest.mark.parametrize("path", ["net/InboundMessage.avsc", "net/ClosedConnection.avsc"])
def test_the_marker_leaves_the_schema_fingerprint_alone(path: str) -> None:
    """Docs and properties are not in the Parsing Canonical Form: records written before
    and after (and by bridges with and without redaction) share one schema."""
    released = Path(RELEASED / path)
    now = schema_files()[path]
    before = json.loads(released.read_text())
    assert to_parsing_canonical_form(fastavro.parse_schema(now)) == to_parsing_canonical_form(
        fastavro.parse_schema(before)
    )


@pytest.mark.parametrize(
    ("kind", "enum"),
    [(Kind.U32, None), (Kind.HASH32, None), (Kind.CSTR, "enum")],
)
def test_only_plain_text_or_data_can_be_an_address(kind: Kind, enum: str | None) -> None:
    with pytest.raises(ValueError, match="must be plain text or data"):
        FieldSpec(
            "a",
            kind,
            "doc",
            max_len=10 if kind is Kind.CSTR else None,
            enum=CONNECTION_TYPE if enum else None,
            address=True,
        )
