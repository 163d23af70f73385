"""Writing events as Parquet (pyarrow, the optional extra ``parquet``).

Rows are buffered per column and written as row groups of ``row_group_size`` events,
so memory stays bounded however long the replay. Column types follow the Avro types:
long/int -> int64, boolean -> bool, string/enum -> string, bytes/fixed -> binary
(hashes keep wire order; ``*_hex`` columns hold the display hex), other shapes -> JSON
text. Every event field column is nullable: a row of another event type has no value.
"""

from __future__ import annotations

import importlib
import json
from typing import IO, Any

from bridge.replay.events import Event
from bridge.replay.kafka_range import ReplayError
from bridge.replay.writers import Columns, flat_row

ROW_GROUP_SIZE = 65_536


def _pyarrow() -> Any:
    """pyarrow, imported when Parquet is asked for (the extra is optional; importing it
    by name also keeps mypy from needing its stubs)."""
    try:
        pyarrow = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ReplayError(
            "Parquet output needs pyarrow: pip install 'tracebridge[parquet]'"
        ) from None
    return pyarrow


class ParquetWriter:
    """Events to one Parquet file (a path, or a binary stream such as stdout)."""

    def __init__(
        self, out: str | IO[bytes], columns: Columns, row_group_size: int = ROW_GROUP_SIZE
    ) -> None:
        pa = _pyarrow()
        self._pa = pa
        types = {
            "int": pa.int64(),
            "bool": pa.bool_(),
            "str": pa.string(),
            "bytes": pa.binary(),
            "float": pa.float64(),
            "json": pa.string(),
        }
        self._names = columns.names
        self._json = {name for name, (kind, _) in columns.kinds.items() if kind == "json"}
        self._text = {name for name, (kind, _) in columns.kinds.items() if kind == "str"}
        self._schema = pa.schema(
            [
                pa.field(name, types[kind], nullable=nullable)
                for name, (kind, nullable) in columns.kinds.items()
            ]
        )
        sink = out if isinstance(out, str) else pa.PythonFile(out, mode="w")
        self._writer = pa.parquet.ParquetWriter(sink, self._schema, compression="zstd")
        self._row_group_size = row_group_size
        self._buffer: dict[str, list[Any]] = {name: [] for name in self._names}
        self._rows = 0

    def write(self, event: Event) -> None:
        row = flat_row(event)
        for name in self._names:
            value = row.get(name)
            if value is not None:
                if name in self._json:
                    value = json.dumps(value, separators=(",", ":"), default=_hex)
                elif name in self._text and not isinstance(value, str):
                    value = str(value)
            self._buffer[name].append(value)
        self._rows += 1
        if self._rows >= self._row_group_size:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        table = self._pa.Table.from_pydict(self._buffer, schema=self._schema)
        self._writer.write_table(table)
        self._buffer = {name: [] for name in self._names}
        self._rows = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _hex(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
