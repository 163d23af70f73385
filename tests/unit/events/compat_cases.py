"""Hand-made old/new schema pairs, one per resolution rule, with the expected verdicts.

Shared by the unit tests (our checker) and tests/registry/test_compat_agreement.py (the
same pairs put to Apicurio's compatibility endpoint), so "agrees with the registry" is
checked on exactly the cases the rules are specified by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def record(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    """A record schema in namespace ``t.compat`` with ``fields``."""
    return {
        "type": "record",
        "name": name,
        "namespace": "t.compat",
        "fields": list(fields),
        **extra,
    }


def f(name: str, avro_type: Any, **extra: Any) -> dict[str, Any]:
    """A field."""
    return {"name": name, "type": avro_type, **extra}


def enum(symbols: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": symbols, **extra}


@dataclass(frozen=True)
class Case:
    """``backward``: new reads old data; ``forward``: old reads new data."""

    id: str
    old: dict[str, Any]
    new: dict[str, Any]
    backward: bool
    forward: bool


CASES: tuple[Case, ...] = (
    Case(
        "field added with default",
        record(f("a", "int")),
        record(f("a", "int"), f("b", "long", default=0)),
        backward=True,
        forward=True,
    ),
    Case(
        "field added without default",
        record(f("a", "int")),
        record(f("a", "int"), f("b", "long")),
        backward=False,
        forward=True,
    ),
    Case(
        "field removed that had no default",
        record(f("a", "int"), f("b", "long")),
        record(f("a", "int")),
        backward=True,
        forward=False,
    ),
    Case(
        "field removed that had a default",
        record(f("a", "int"), f("b", "long", default=7)),
        record(f("a", "int")),
        backward=True,
        forward=True,
    ),
    Case(
        "int promoted to long",
        record(f("a", "int")),
        record(f("a", "long")),
        backward=True,
        forward=False,
    ),
    Case(
        "long promoted to double",
        record(f("a", "long")),
        record(f("a", "double")),
        backward=True,
        forward=False,
    ),
    Case(
        "float promoted to double",
        record(f("a", "float")),
        record(f("a", "double")),
        backward=True,
        forward=False,
    ),
    Case(
        "long narrowed to int",
        record(f("a", "long")),
        record(f("a", "int")),
        backward=False,
        forward=True,
    ),
    Case(
        "string to bytes",
        record(f("a", "string")),
        record(f("a", "bytes")),
        backward=True,
        forward=True,
    ),
    Case(
        "string to int",
        record(f("a", "string")),
        record(f("a", "int")),
        backward=False,
        forward=False,
    ),
    Case(
        "enum symbol added, no reader default",
        record(f("e", enum(["A", "B"]))),
        record(f("e", enum(["A", "B", "C"]))),
        backward=True,
        forward=False,
    ),
    Case(
        "enum symbol added, old reader has a default",
        record(f("e", enum(["UNKNOWN", "A"], default="UNKNOWN"))),
        record(f("e", enum(["UNKNOWN", "A", "B"], default="UNKNOWN"))),
        backward=True,
        forward=True,
    ),
    Case(
        "enum symbol removed",
        record(f("e", enum(["A", "B"]))),
        record(f("e", enum(["A"]))),
        backward=False,
        forward=True,
    ),
    Case(
        "union widened",
        record(f("u", ["null", "string"], default=None)),
        record(f("u", ["null", "string", "long"], default=None)),
        backward=True,
        forward=False,
    ),
    Case(
        "type made nullable",
        record(f("a", "string")),
        record(f("a", ["null", "string"], default=None)),
        backward=True,
        forward=False,
    ),
    Case(
        "fixed size changed",
        record(f("h", {"type": "fixed", "name": "H", "size": 32})),
        record(f("h", {"type": "fixed", "name": "H", "size": 20})),
        backward=False,
        forward=False,
    ),
    Case(
        "named type renamed",
        record(f("h", {"type": "fixed", "name": "H", "size": 32})),
        record(f("h", {"type": "fixed", "name": "G", "size": 32})),
        backward=False,
        forward=False,
    ),
    Case(
        "named type renamed with an alias",
        record(f("h", {"type": "fixed", "name": "H", "size": 32})),
        record(f("h", {"type": "fixed", "name": "G", "size": 32, "aliases": ["H"]})),
        backward=True,
        forward=False,
    ),
    Case(
        "nested record gains a defaulted field, referenced by name later",
        record(
            f("x", record(f("v", "int"), name="Inner")),
            f("y", "Inner"),
        ),
        record(
            f("x", record(f("v", "int"), f("w", "string", default=""), name="Inner")),
            f("y", "Inner"),
        ),
        backward=True,
        forward=True,
    ),
    Case(
        "array items promoted",
        record(f("xs", {"type": "array", "items": "int"})),
        record(f("xs", {"type": "array", "items": "long"})),
        backward=True,
        forward=False,
    ),
    Case(
        "map values changed incompatibly",
        record(f("m", {"type": "map", "values": "string"})),
        record(f("m", {"type": "map", "values": "boolean"})),
        backward=False,
        forward=False,
    ),
)
