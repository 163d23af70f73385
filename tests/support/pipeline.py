"""Run the real bridge against the emulated node and read its topics back (tests only)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.app import Bridge
from bridge.config import BridgeSettings, load_settings
from bridge.consume import ConsumedRecord, TopicReader
from bridge.events.avro_values import as_long
from bridge.events.catalog import BY_NAME
from bridge.events.decoder import trim_partial_utf8
from bridge.events.spec import Kind
from bridge.sinks.kafka.topics import all_topics
from bridge.sources.usdt.source import UsdtSource
from bridge.status import BridgeExited, StatusFile
from bridge.verify import StreamVerdict, audit_records, verify_records


def settings_for(
    bootstrap: str, prefix: str, kafka: dict[str, Any] | None = None, **usdt: Any
) -> BridgeSettings:
    return load_settings(
        None,
        {
            "node_id": "emulated-node",
            "usdt": usdt,
            "kafka": {
                "bootstrap_servers": bootstrap,
                "topic_prefix": prefix,
                "linger_ms": 5,
                **(kafka or {}),
            },
            "heartbeat_interval_s": 1.0,
        },
    )


@dataclass
class RunningBridge:
    bridge: Bridge
    thread: threading.Thread
    status_file: Path
    errors: list[BaseException] = field(default_factory=list)

    def wait_for(
        self, state: str, timeout: float = 60.0, session_not: str | None = None
    ) -> dict[str, Any]:
        try:
            status = StatusFile(self.status_file).wait_for(
                state, timeout=timeout, not_session=session_not, still_running=self.thread.is_alive
            )
        except BridgeExited:
            if self.errors:
                raise self.errors[0] from None
            raise
        assert status is not None
        return status


@contextmanager
def running_bridge(settings: BridgeSettings, tmp_path: Path) -> Iterator[RunningBridge]:
    """The bridge in a thread; stopped (books closed) when the block ends."""
    status_file = tmp_path / f"status-{time.monotonic_ns()}.json"
    stop = threading.Event()
    bridge = Bridge(settings, UsdtSource(settings.usdt), stop=stop, status_file=status_file)
    running = RunningBridge(bridge, threading.Thread(target=lambda: None), status_file)

    def target() -> None:
        try:
            bridge.run()
        except BaseException as error:  # surfaced to the test by wait_for()
            running.errors.append(error)

    running.thread = threading.Thread(target=target, name="bridge", daemon=True)
    running.thread.start()
    try:
        yield running
    finally:
        stop.set()
        running.thread.join(120)
    if running.errors:
        raise running.errors[0]


def read_topics(
    bootstrap: str, prefix: str, security: dict[str, str] | None = None
) -> list[ConsumedRecord]:
    with TopicReader(bootstrap, all_topics(prefix), security=security) as reader:
        return list(reader.records())


def verdicts(records: list[ConsumedRecord]) -> list[StreamVerdict]:
    """The ledger-balance verdict of every stream, after requiring that the strict audit
    (``tracebridge audit``: every seq gap placed, closed streams only) passes too."""
    pairs = [(r.schema.full_name, r.value) for r in records if r.schema is not None and r.value]
    report = audit_records(pairs, require_closed=True)
    assert report.ok, report.as_dict()
    return verify_records(pairs)


def events_by_stream(records: list[ConsumedRecord]) -> dict[str, list[dict[str, Any]]]:
    """Event records per stream, in seq order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.value is not None and "envelope" in record.value:
            out[record.value["envelope"]["stream"]].append(record.value)
    for values in out.values():
        values.sort(key=lambda v: v["envelope"]["seq"])
    return out


def final_books(records: list[ConsumedRecord]) -> dict[tuple[str, str], dict[str, Any]]:
    """(session, stream) -> the stream's entry in its SESSION_END heartbeat."""
    books = {}
    for record in records:
        if record.schema and record.schema.full_name == "tracebridge.bridge.Heartbeat":
            assert record.value is not None
            if record.value["kind"] == "SESSION_END":
                for book in record.value["streams"]:
                    books[(record.value["session_id"], book["stream"])] = book
    return books


def expected_fields(stream: str, args: tuple[Any, ...], payload_cap: int) -> dict[str, Any]:
    """What the Avro record of one emulated event must contain, worked out from the
    emulator's record of the arguments it passed: bounds applied as the BPF program
    reads them, hashes with their display hex, enums by the catalogue's tables."""
    spec = BY_NAME[stream]
    values = dict(zip((f.name for f in spec.fields), args, strict=True))
    out: dict[str, Any] = {}
    for f in spec.fields:
        value = values[f.name]
        if f.kind is Kind.HASH32:
            out[f.name] = value
            out[f"{f.name}_hex"] = bytes(reversed(value)).hex()
        elif f.kind is Kind.CSTR:
            assert f.max_len is not None
            raw = value.encode() if isinstance(value, str) else value
            kept = raw[: f.max_len]
            if len(raw) >= f.max_len:
                kept = trim_partial_utf8(kept)
            text = kept.decode()
            if f.enum is not None:
                index = f.enum.index_of(text)
                out[f.name] = f.enum.symbols[index]
                out[f"{f.name}_raw"] = None if index else text
            else:
                out[f.name] = text
        elif f.kind is Kind.PAYLOAD:
            out[f.name] = value[:payload_cap]
            out[f"{f.name}_truncated"] = values[f.length_of or ""] > min(len(value), payload_cap)
        elif f.enum is not None:
            index = f.enum.index_of(value)
            out[f.name] = f.enum.symbols[index]
            out[f"{f.name}_raw"] = None if index else value
        elif f.kind is Kind.U64:
            out[f.name] = as_long(value)
        else:
            out[f.name] = value
    return out
