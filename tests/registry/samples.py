"""Deterministic sample records for any committed schema (tests only).

Named types defined once and referenced by name later (as the committed schemas do with
``tracebridge.Hash32`` and the enums) are followed, so every schema yields a record that
fastavro validates; ``n`` varies the values so several samples differ.
"""

from __future__ import annotations

from typing import Any


def sample_record(definition: dict[str, Any], n: int = 1) -> dict[str, Any]:
    """A valid record for ``definition``, its values derived from ``n``."""
    names: dict[str, dict[str, Any]] = {}

    def full(node: dict[str, Any], namespace: str) -> tuple[str, str]:
        name = str(node["name"])
        space = node.get("namespace", namespace)
        full_name = name if "." in name or not space else f"{space}.{name}"
        return full_name, full_name.rpartition(".")[0]

    def value(avro_type: Any, namespace: str) -> Any:
        if isinstance(avro_type, list):
            # Prefer a non-null branch, so the sample carries data.
            branches = [b for b in avro_type if b != "null"] or avro_type
            return value(branches[0], namespace)
        if isinstance(avro_type, str):
            primitive = {
                "null": None,
                "boolean": n % 2 == 1,
                "int": n,
                "long": n * 1_000_003,
                "float": n / 4,
                "double": n / 8,
                "bytes": bytes([n % 256]) * 3,
                "string": f"s{n}",
            }
            if avro_type in primitive:
                return primitive[avro_type]
            key = avro_type if avro_type in names else f"{namespace}.{avro_type}"
            return value(names[key], namespace)
        kind = avro_type["type"]
        if kind in ("record", "enum", "fixed"):
            full_name, inner = full(avro_type, namespace)
            names[full_name] = avro_type
            if kind == "enum":
                symbols = avro_type["symbols"]
                return symbols[n % len(symbols)]
            if kind == "fixed":
                return bytes([n % 256]) * int(avro_type["size"])
            return {f["name"]: value(f["type"], inner) for f in avro_type["fields"]}
        if kind == "array":
            return [value(avro_type["items"], namespace)]
        if kind == "map":
            return {"k": value(avro_type["values"], namespace)}
        return value(kind, namespace)

    record = value(definition, "")
    assert isinstance(record, dict)
    return record
