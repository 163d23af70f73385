"""Read another program's JSON rendering of an Avro record back into exact values.

Why a schema walk and not a plain ``==`` on JSON: JSON cannot say what Avro can. Bytes and
fixed become text (hex from TopicDump, base64 from Kafka Connect's JsonConverter), a
double may become a string ("NaN"), an int and a boolean look alike to Python, and a
union's branch is implicit. So each JVM line is turned back into the values the project's
Python replay yields (fastavro's: bytes, str, int, float, bool, None, dict, list), guided
by the committed schema, checking on the way that every JSON value has the type its field
demands and that no field is missing or extra. ``comparable`` then makes the two sides
equal exactly when their values are, NaN included.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BytesText = Callable[[str], bytes]

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def from_hex(text: str) -> bytes:
    """TopicDump's bytes: lowercase hex."""
    if text != text.lower():
        raise ValueError(f"not lowercase hex: {text!r}")
    return bytes.fromhex(text)


def from_base64(text: str) -> bytes:
    """Kafka Connect's JsonConverter's bytes: standard base64, padded."""
    return base64.b64decode(text, validate=True)


class JsonShapeError(AssertionError):
    """A JSON value that is not what its schema says (names the path)."""


@dataclass(frozen=True)
class AvroJsonReader:
    """Reads JSON renderings of one committed schema's records (``definition``: as committed)."""

    definition: Mapping[str, Any]
    bytes_text: BytesText

    def read(self, value: Any) -> Any:
        names: dict[str, Any] = {}
        _collect_names(self.definition, "", names)
        return self._read(self.definition, value, "", names, "$")

    def _read(self, schema: Any, value: Any, namespace: str, names: dict[str, Any], at: str) -> Any:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema, value, at)
            named = names.get(schema) or names.get(f"{namespace}.{schema}")
            _check(named is not None, at, f"unknown type {schema}")
            return self._read(named, value, namespace, names, at)
        if isinstance(schema, list):
            if value is None and "null" in schema:
                return None
            branches = [b for b in schema if b != "null"]
            # tracebridge's unions are ["null", T]; a wider one would need its branch named.
            _check(len(branches) == 1, at, f"union {schema} is not [null, T]")
            return self._read(branches[0], value, namespace, names, at)
        kind = schema["type"]
        namespace = schema.get("namespace", namespace)
        if kind == "record":
            _check(isinstance(value, dict), at, "a record must be an object")
            fields = [f["name"] for f in schema["fields"]]
            _check(sorted(value) == sorted(fields), at, f"fields {sorted(value)} != {fields}")
            return {
                f["name"]: self._read(
                    f["type"], value[f["name"]], namespace, names, f"{at}.{f['name']}"
                )
                for f in schema["fields"]
            }
        if kind == "enum":
            _check(value in schema["symbols"], at, f"{value!r} is not a symbol")
            return value
        if kind == "fixed":
            raw = self._bytes(value, at)
            _check(len(raw) == schema["size"], at, f"fixed({schema['size']}) has {len(raw)}")
            return raw
        if kind == "array":
            _check(isinstance(value, list), at, "an array must be a list")
            return [
                self._read(schema["items"], item, namespace, names, f"{at}[{i}]")
                for i, item in enumerate(value)
            ]
        if kind == "map":
            _check(isinstance(value, dict), at, "a map must be an object")
            return {
                k: self._read(schema["values"], v, namespace, names, f"{at}[{k!r}]")
                for k, v in value.items()
            }
        return self._read(kind, value, namespace, names, at)  # {"type": "long"} and the like

    def _primitive(self, kind: str, value: Any, at: str) -> Any:
        if kind == "null":
            _check(value is None, at, "must be null")
        elif kind == "boolean":
            _check(isinstance(value, bool), at, "must be true or false")
        elif kind in ("int", "long"):
            _check(isinstance(value, int) and not isinstance(value, bool), at, "must be an integer")
            bits = 32 if kind == "int" else 64
            _check(-(2 ** (bits - 1)) <= value < 2 ** (bits - 1), at, f"out of {kind} range")
        elif kind in ("float", "double"):
            if isinstance(value, str):
                _check(value in NON_FINITE, at, f"{value!r} is not a number")
                return NON_FINITE[value]
            _check(isinstance(value, (int, float)) and not isinstance(value, bool), at, "number")
            return float(value)
        elif kind == "string":
            _check(isinstance(value, str), at, "must be text")
        elif kind == "bytes":
            return self._bytes(value, at)
        return value

    def _bytes(self, value: Any, at: str) -> bytes:
        _check(isinstance(value, str), at, "bytes must be text")
        try:
            return self.bytes_text(value)
        except ValueError as error:  # bad hex or base64 (binascii.Error is a ValueError)
            raise JsonShapeError(f"{at}: {error}") from None


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _check(ok: bool, at: str, what: str) -> None:
    if not ok:
        raise JsonShapeError(f"{at}: {what}")


def _collect_names(schema: Any, namespace: str, names: dict[str, Any]) -> None:
    """Every named type (record, enum, fixed) defined in ``schema``, by its full name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        namespace = schema.get("namespace", namespace)
        name = schema["name"]
        full = name if "." in name else f"{namespace}.{name}" if namespace else name
        names[full] = schema
    for field in schema.get("fields", ()):
        _collect_names(field["type"], namespace, names)
    for key in ("items", "values"):
        if key in schema:
            _collect_names(schema[key], namespace, names)
    if isinstance(kind, (dict, list)):
        _collect_names(kind, namespace, names)


@dataclass(frozen=True)
class Double:
    """A double as its exact bits' hex (``float.hex``), so NaN equals NaN."""

    hex: str


def comparable(value: Any) -> Any:
    """``value`` with every float replaced by its exact :class:`Double`; nothing else changes."""
    if isinstance(value, float):
        return Double("nan" if math.isnan(value) else value.hex())
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value
