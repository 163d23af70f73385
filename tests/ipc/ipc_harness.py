"""Run the real bridge with its IPC source against the emulated IPC node (tests only).

The bridge runs in a thread, built as ``tracebridge run --source ipc`` builds it
(:class:`bridge.app.Bridge` over ``make_source``'s :class:`IpcSource`), and is
watched through its status file and its ledger observer (``on_books``), as a
supervisor would. What the node sent is read from the emulator's own ``--record`` and
report; the expected Avro values are worked out here from those, independently of the
bridge's own mapping code (``bridge.events.avro_values``).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge.app import Bridge
from bridge.cli.run import make_source
from bridge.config import BridgeSettings, load_settings
from bridge.consume import ConsumedRecord
from bridge.emulator.ipc_report import RecordLine, read_ipc_records
from bridge.emulator.ipc_scenario import StreamName
from bridge.events.catalog import BY_NAME
from bridge.events.spec import EnumSpec
from bridge.ledger import StreamLedger
from bridge.status import StatusFile

NODE_ID = "emulated-ipc-node"

# Emulator stream -> the bridge streams (envelope.stream) its events arrive on.
UTXO_STREAMS = {"add": "utxocache:add", "spend": "utxocache:spent", "uncache": "utxocache:uncache"}
CHAIN_STREAMS = {
    "transactionAddedToMempool": "chain:transaction_added_to_mempool",
    "transactionRemovedFromMempool": "chain:transaction_removed_from_mempool",
    "blockConnected": "chain:block_connected",
    "blockDisconnected": "chain:block_disconnected",
    "updatedBlockTip": "chain:updated_block_tip",
    "chainStateFlushed": "chain:chain_state_flushed",
}
NODE_STREAMS = {
    "handleNotifyNumConnectionsChanged": "node:num_connections_changed",
    "handleNotifyNetworkActiveChanged": "node:network_active_changed",
    "handleNotifyAlertChanged": "node:alert_changed",
    "handleBannedListChanged": "node:banned_list_changed",
    "handleNotifyBlockTip": "node:block_tip",
    "handleNotifyHeaderTip": "node:header_tip",
}
NET_STREAM = "net:messages"
TIP_STREAM = "mining:tip_changed"
SNAPSHOT_STREAMS = (
    "node:peers",
    "node:network_stats",
    "node:mempool_stats",
    "node:chain_stats",
    "chain:fee_estimates",
)
# Bridge streams fed by each emulator stream.
BRIDGE_STREAMS: dict[StreamName, tuple[str, ...]] = {
    "utxo": tuple(UTXO_STREAMS.values()),
    "net": (NET_STREAM,),
    "chain": tuple(CHAIN_STREAMS.values()),
    "node_notifications": tuple(NODE_STREAMS.values()),
}


def bridge_stream(line: RecordLine) -> str:
    """The bridge stream an emulator event line must arrive on."""
    stream, method = line["stream"], line["method"]
    if stream == "utxo":
        return UTXO_STREAMS[method]
    if stream == "net":
        return NET_STREAM
    if stream == "chain":
        return CHAIN_STREAMS[method]
    return NODE_STREAMS[method]


def ipc_settings(bootstrap: str, prefix: str, socket: Path, **ipc: Any) -> BridgeSettings:
    """Settings of a bridge reading ``socket``; ``ipc`` overrides the ipc.* defaults here."""
    return load_settings(
        None,
        {
            "node_id": NODE_ID,
            "source": "ipc",
            "ipc": {
                "socket": str(socket),
                "poll_interval_s": 0.5,
                "reconnect_max_backoff_s": 0.5,
                **ipc,
            },
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "linger_ms": 5},
            "heartbeat_interval_s": 0.5,
        },
    )


class RecordingStatusFile(StatusFile):
    """The bridge's status file, also keeping every update in order: a state that lasts
    only milliseconds (a session ending just before the next one attaches) is seen too."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.history: list[dict[str, Any]] = []
        self.session: str | None = None  # of the last "attached"
        self.lock = threading.Lock()

    def update(self, state: str, **details: Any) -> None:
        with self.lock:
            if state == "attached":
                self.session = details["session_id"]
            self.history.append({"state": state, **details})
        super().update(state, **details)


class IpcBridge:
    """A bridge running in a thread; see :func:`running_ipc_bridge`."""

    def __init__(self, settings: BridgeSettings, status_file: Path) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._books: dict[str, dict[str, StreamLedger]] = {}  # session -> stream -> books
        self.bridge = Bridge(
            settings,
            make_source(settings),
            stop=self.stop,
            status_file=status_file,
            on_books=self._on_books,
        )
        self.recorder = RecordingStatusFile(status_file)
        self.bridge.status = self.recorder
        self.thread = threading.Thread(target=self._run, name="bridge", daemon=True)

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as error:  # surfaced to the test
            self.errors.append(error)

    def _on_books(self, books: list[StreamLedger]) -> None:
        # Heartbeats and status updates both come from the bridge's thread: these books
        # belong to the session that attached last.
        with self.recorder.lock:
            session = self.recorder.session
            assert session is not None
            self._books[session] = {book.stream: book for book in books}

    def books(self, session: str) -> dict[str, StreamLedger]:
        """The session's books as of its last heartbeat."""
        with self.recorder.lock:
            return dict(self._books.get(session, {}))

    def status(self) -> dict[str, Any]:
        """The status file as a supervisor reads it."""
        return self.recorder.read()

    def wait_for(
        self,
        state: str,
        *,
        session: str | None = None,
        session_not: str | Iterable[str] = (),
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """The first status update to ``state`` (of ``session``, or of a session not in
        ``session_not``); the bridge's own error if it died first."""
        excluded = {session_not} if isinstance(session_not, str) else set(session_not)
        deadline = time.monotonic() + timeout
        while True:
            with self.recorder.lock:
                history = list(self.recorder.history)
            for update in history:
                if update["state"] != state or update.get("session_id") in excluded:
                    continue
                if session is None or update.get("session_id") == session:
                    return update
            if not self.thread.is_alive():
                if self.errors:
                    raise self.errors[0]
                raise AssertionError(f"the bridge stopped before {state!r}: {history}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {state!r} within {timeout:.0f} s: {history}")
            time.sleep(0.02)

    def wait_captured(
        self, session: str, streams: Iterable[str], count: int, timeout: float = 30.0
    ) -> None:
        """Until the session's heartbeats say ``streams`` captured ``count`` events."""
        wanted = tuple(streams)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline and self.thread.is_alive():
            books = self.books(session)
            seen = sum(books[s].captured for s in wanted if s in books)
            if seen >= count:
                return
            time.sleep(0.02)
        raise TimeoutError(f"{wanted} captured {seen} of {count} events; status {self.status()}")

    def take_error(self, timeout: float = 30.0) -> BaseException:
        """The error the bridge died of (it must die of one within ``timeout``)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the bridge is still running"
        assert self.errors, "the bridge ended without an error"
        return self.errors.pop(0)


@contextmanager
def running_ipc_bridge(settings: BridgeSettings, tmp_path: Path) -> Iterator[IpcBridge]:
    """The bridge with an IpcSource in a thread; stopped (books closed) when the block
    ends. An error it died of is raised then, unless the test took it."""
    running = IpcBridge(settings, tmp_path / f"status-{time.monotonic_ns()}.json")
    running.thread.start()
    try:
        yield running
    finally:
        running.stop.set()
        running.thread.join(60)
    assert not running.thread.is_alive(), "the bridge did not stop within 60 s"
    if running.errors:
        raise running.errors[0]


# ------------------------------------------------------------------------------------
# What the emulator sent.
# ------------------------------------------------------------------------------------


def event_lines(record: Path, stream: str | None = None) -> list[RecordLine]:
    """The record's event lines (of one emulator stream), in the order they were sent."""
    return [
        line
        for line in read_ipc_records(record)
        if line["kind"] == "event" and (stream is None or line["stream"] == stream)
    ]


def sent_by_bridge_stream(lines: Iterable[RecordLine]) -> dict[str, list[RecordLine]]:
    """Event lines grouped by the bridge stream they must arrive on, in sending order."""
    out: dict[str, list[RecordLine]] = defaultdict(list)
    for line in lines:
        out[bridge_stream(line)].append(line)
    return out


def signed64(value: int) -> int:
    """An unsigned 64-bit value as the Avro long with the same bits."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def hash_fields(name: str, hex_wire: str) -> dict[str, Any]:
    """A hash as the record carries it: the wire bytes, and the display (reversed) hex."""
    raw = bytes.fromhex(hex_wire)
    return {name: raw, f"{name}_hex": raw[::-1].hex()}


def enum_fields(name: str, enum: EnumSpec, raw: int | str) -> dict[str, Any]:
    """An enum symbol by the catalogue's table, and the raw value when it is unknown."""
    for value, symbol in enum.values:
        if value == raw:
            return {name: symbol, f"{name}_raw": None}
    return {name: "UNKNOWN", f"{name}_raw": raw}


def _enum(stream: str, field_name: str) -> EnumSpec:
    enum = BY_NAME[stream].field_named(field_name).enum
    assert enum is not None
    return enum


def expected_fields(line: RecordLine) -> dict[str, Any]:
    """The Avro fields (everything but the envelope) one sent event must arrive with."""
    stream = bridge_stream(line)
    if line["stream"] == "utxo":
        info = line["utxoInfo"]
        return {
            **hash_fields("txid", info["outpointHash"]),
            "index": info["outpointN"],
            "height": info["height"],
            "value": info["value"],
            "is_coinbase": info["isCoinbase"],
        }
    if line["stream"] == "net":
        payload = bytes.fromhex(line["payload"])
        return {
            "peer_id": line["peerId"],
            "peer_addr": line["peerAddr"],
            **enum_fields("conn_type", _enum("net:inbound_message", "conn_type"), line["connType"]),
            "msg_type": line["msgType"],
            "msg_size": signed64(line["msgSize"]),
            "msg": payload,
            "msg_truncated": line["msgSize"] > len(payload),
        }
    if line["stream"] == "chain":
        return _chain_fields(stream, line)
    return _node_fields(stream, line)


def _chain_fields(stream: str, line: RecordLine) -> dict[str, Any]:
    method = line["method"]
    if method in ("transactionAddedToMempool", "transactionRemovedFromMempool"):
        out = {
            "tx": bytes.fromhex(line["tx"]),
            **hash_fields("txid", line["txid"]),
            **hash_fields("wtxid", line["wtxid"]),
            "vsize": line["vsize"],
        }
        if method == "transactionRemovedFromMempool":
            out.update(enum_fields("reason", _enum(stream, "reason"), line["reason"]))
        return out
    role: dict[str, Any] = {}
    if "role" in line:
        role = {
            "role_validated": line["role"]["validated"],
            "role_historical": line["role"]["historical"],
        }
    if method in ("blockConnected", "blockDisconnected"):
        block = line["block"]
        return {
            **role,
            **hash_fields("block_hash", block["hash"]),
            **hash_fields("prev_hash", block["prevHash"]),
            "height": block["height"],
            "file_number": block["fileNumber"],
            "data_pos": block["dataPos"],
            "chain_time_max": block["chainTimeMax"],
            "block": bytes.fromhex(block["data"]),
        }
    if method == "chainStateFlushed":
        return {**role, "locator": bytes.fromhex(line["locator"])}
    assert method == "updatedBlockTip", method
    return {}


def _node_fields(stream: str, line: RecordLine) -> dict[str, Any]:
    method = line["method"]
    if method == "handleNotifyNumConnectionsChanged":
        return {"num_connections": line["newNumConnections"]}
    if method == "handleNotifyNetworkActiveChanged":
        return {"network_active": line["networkActive"]}
    if method in ("handleNotifyBlockTip", "handleNotifyHeaderTip"):
        tip = line["tip"]
        return {
            **enum_fields("sync_state", _enum(stream, "sync_state"), line["syncState"]),
            "height": tip["blockHeight"],
            "block_time": tip["blockTime"],
            **hash_fields("block_hash", tip["blockHash"]),
            "verification_progress": line["verificationProgress"],
        }
    assert method in ("handleNotifyAlertChanged", "handleBannedListChanged"), method
    return {}


# ------------------------------------------------------------------------------------
# What arrived.
# ------------------------------------------------------------------------------------


def event_records(records: Iterable[ConsumedRecord]) -> list[ConsumedRecord]:
    """The event records (those with an envelope), in topic order."""
    return [r for r in records if r.value is not None and "envelope" in r.value]


def by_session_and_stream(
    records: Iterable[ConsumedRecord],
) -> dict[tuple[str, str], list[ConsumedRecord]]:
    """(session, stream) -> its event records in seq order."""
    out: dict[tuple[str, str], list[ConsumedRecord]] = defaultdict(list)
    for record in event_records(records):
        assert record.value is not None
        envelope = record.value["envelope"]
        out[(envelope["session_id"], envelope["stream"])].append(record)
    for values in out.values():
        values.sort(key=lambda r: r.value["envelope"]["seq"] if r.value else 0)
    return out


def dead_letters(records: Iterable[ConsumedRecord]) -> list[dict[str, Any]]:
    return [r.value for r in records if r.topic.endswith(".deadletter") and r.value is not None]


def fields_of(value: dict[str, Any]) -> dict[str, Any]:
    """A record's fields without its envelope."""
    return {k: v for k, v in value.items() if k != "envelope"}
