"""Writing events as JSON lines or CSV (Parquet: :mod:`bridge.replay.parquet`).

JSON lines keep the record's shape (envelope and fields apart, Kafka position beside).
CSV and Parquet need one flat row per event and the columns up front, so the columns
are the envelope's, then the union of the selected event types' fields, in schema
order, taken from the committed schemas (never from the data, which may not hold every
type). Bytes (hashes in wire order, payloads) are written as hex in text formats; the
``*_hex`` fields already hold hashes in display order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any, Protocol

from bridge.codec.fast_decode import compile_schema
from bridge.codec.single_object import SchemaStore
from bridge.replay.events import Event
from bridge.replay.selection import event_types

ENVELOPE_COLUMNS: tuple[str, ...] = (
    "record",
    "node_id",
    "source",
    "session_id",
    "stream",
    "seq",
    "ts_mono_ns",
    "ts_wall_ns",
    "lost_before",
    "lost_kernel",
    "lost_bridge",
    "lost_producer",
    "lost_node",
    "topic",
    "partition",
    "offset",
    "timestamp_ms",
)
ENVELOPE_KINDS: dict[str, str] = {
    name: "str"
    if name in ("record", "node_id", "source", "session_id", "stream", "topic")
    else "int"
    for name in ENVELOPE_COLUMNS
}


def _kind(tree: Any) -> tuple[str, bool]:
    """A column kind for a compiled Avro type (see fast_decode), and whether it is nullable."""
    if isinstance(tree, str):
        return {
            "long": "int",
            "int": "int",
            "boolean": "bool",
            "string": "str",
            "bytes": "bytes",
            "float": "float",
            "double": "float",
            "null": "str",
        }[tree], tree == "null"
    tag, arg = tree
    if tag == "union":
        branches = [b for b in arg if b != "null"]
        if len(branches) == 1:
            return _kind(branches[0])[0], True
        return "json", True
    return {"fixed": "bytes", "enum": "str"}.get(tag, "json"), False


@dataclass(frozen=True)
class Columns:
    """The flat columns of a selection: name -> (kind, nullable), in output order."""

    kinds: dict[str, tuple[str, bool]]

    @property
    def names(self) -> list[str]:
        return list(self.kinds)


def columns_for(store: SchemaStore, streams: Iterable[str] | None = None) -> Columns:
    """Envelope columns, then every field of the selected event types (all when None)."""
    wanted = None if streams is None else set(streams)
    kinds: dict[str, tuple[str, bool]] = {n: (k, False) for n, k in ENVELOPE_KINDS.items()}
    for event_type in event_types(store):
        if wanted is not None and event_type.stream not in wanted:
            continue
        tree = compile_schema(store.by_name(event_type.record).definition)
        assert isinstance(tree, tuple)
        assert tree[0] == "record"
        fields = tree[1]
        for name, field_tree in fields:
            if name == "envelope":  # flattened into the envelope columns above
                continue
            kind, _ = _kind(field_tree)
            previous = kinds.get(name)
            if previous is not None and previous[0] != kind:
                kind = "json" if "json" in (kind, previous[0]) else "str"
            # a column another event type lacks is null for that type's rows
            kinds[name] = (kind, True)
    return Columns(kinds)


def flat_row(event: Event) -> dict[str, Any]:
    """One event as a flat dict: envelope columns, Kafka position, then its fields."""
    envelope = event.envelope
    lost = envelope["lost"]
    row: dict[str, Any] = {
        "record": event.record,
        "node_id": envelope["node_id"],
        "source": envelope["source"],
        "session_id": envelope["session_id"],
        "stream": envelope["stream"],
        "seq": envelope["seq"],
        "ts_mono_ns": envelope["ts_mono_ns"],
        "ts_wall_ns": envelope["ts_wall_ns"],
        "lost_before": envelope["lost_before"],
        "lost_kernel": lost["kernel"],
        "lost_bridge": lost["bridge"],
        "lost_producer": lost["producer"],
        "lost_node": lost["node"],
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "timestamp_ms": event.timestamp_ms,
    }
    row.update(event.fields)
    return row


def _hex_bytes(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class EventWriter(Protocol):
    """What every output format offers."""

    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per line: record, Kafka position, envelope, fields."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._encode = json.JSONEncoder(separators=(",", ":"), default=_hex_bytes).encode

    def write(self, event: Event) -> None:
        self._out.write(
            self._encode(
                {
                    "record": event.record,
                    "topic": event.topic,
                    "partition": event.partition,
                    "offset": event.offset,
                    "timestamp_ms": event.timestamp_ms,
                    "envelope": event.envelope,
                    "fields": event.fields,
                }
            )
        )
        self._out.write("\n")

    def close(self) -> None:
        self._out.flush()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=_hex_bytes)
    return value


class CsvWriter:
    """RFC 4180 CSV with a header row; empty cells for null and for other types' fields."""

    def __init__(self, out: IO[str], columns: Columns) -> None:
        self._out = out
        self._names = columns.names
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(self._names)

    def write(self, event: Event) -> None:
        row = flat_row(event)
        self._writer.writerow([_csv_cell(row.get(name)) for name in self._names])

    def close(self) -> None:
        self._out.flush()
