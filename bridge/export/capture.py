"""Bitcoin Core's ``-capturemessages`` files, written from the net message events.

Core (src/net.cpp, ``CaptureMessageToFile``) appends every P2P message it processes or
sends to ``<datadir>/message_capture/<peer>/msgs_recv.dat`` or ``msgs_sent.dat``, where
``<peer>`` is the peer's ``ToStringAddrPort()`` with every ``:`` replaced by ``_``.
Each message is:

====== ===== ========================================================
offset bytes
0      8     time of capture, microseconds since the UNIX epoch, little-endian
8      12    message type, ASCII, NUL-padded
20     4     payload length, little-endian unsigned
24     n     the payload (no P2P header)
====== ===== ========================================================

``net:inbound_message`` and ``net:outbound_message`` fire next to Core's two capture
calls, with the same peer, type and payload, so the export writes the same files:
``<out>/<node_id>/<peer>/msgs_recv.dat`` (inbound) and ``msgs_sent.dat`` (outbound), each
``<out>/<node_id>`` playing the part of one node's ``message_capture`` folder. Time is
the envelope's ``ts_wall_ns`` in microseconds. Messages of one file are in seq order.

Differences that cannot be avoided, and what is done about them:

* **Truncated payloads.** The bridge captures at most ``usdt.payload_capture_bytes`` of a
  payload (``msg_truncated`` says so; ``msg_size`` keeps the full size). Core's files
  hold whole payloads, and a parser would misread a truncated one as a corrupt message.
  So by default (``refuse``) the export stops at the first truncated message, removes
  what it wrote, and says how to proceed. ``keep`` writes the captured bytes with the
  length field set to the captured size (so the file stays parseable; the message
  itself will not deserialize) and ``skip`` leaves the message out; both list every
  such message in ``<out>/truncated.jsonl`` (node, peer, direction, time, type, full
  and captured size) and in the summary.
* **Peer folder names.** The tracepoint gives ``m_addr_name``, which equals
  ``ToStringAddrPort()`` except for peers added by host name (``-addnode=host:port``):
  their folder is named after the host name. ``/``, ``\\`` and NUL are replaced by
  ``_`` too (the name comes from the network and must not leave the folder).
* **Lost events.** Messages lost before Kafka (kernel, bridge, producer) are not in the
  files; the summary counts the seqs missing from each stream.
* **Message types** longer than 12 bytes (Core never sends one) are cut to 12 and counted.
"""

from __future__ import annotations

import enum
import json
import shutil
import struct
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.codec.single_object import SchemaStore
from bridge.replay.api import ReadStats, read_events
from bridge.replay.events import Event
from bridge.replay.gaps import find_gaps
from bridge.replay.kafka_range import ReplayError

TIME_SIZE = 8
MSG_TYPE_SIZE = 12  # CMessageHeader::MESSAGE_TYPE_SIZE (COMMAND_SIZE in older Core)
LENGTH_SIZE = 4
_HEADER = struct.Struct("<Q12sI")
assert _HEADER.size == TIME_SIZE + MSG_TYPE_SIZE + LENGTH_SIZE

FILE_BY_STREAM = {"net:inbound_message": "msgs_recv.dat", "net:outbound_message": "msgs_sent.dat"}
MESSAGE_STREAMS = frozenset(FILE_BY_STREAM)
TRUNCATED_LIST = "truncated.jsonl"
SUMMARY_FILE = "export.json"
MAX_OPEN_FILES = 128


class Truncated(enum.Enum):
    """What to do with a message whose payload was cut at capture."""

    REFUSE = "refuse"
    KEEP = "keep"
    SKIP = "skip"


class TruncatedCaptureError(ReplayError):
    """A truncated message met with the ``refuse`` policy."""


def peer_folder(peer_addr: str) -> str:
    """Core's folder name for a peer: ``ToStringAddrPort()`` with ``:`` -> ``_`` (plus the
    separators a hostile name could use to leave the folder)."""
    name = peer_addr
    for bad in (":", "/", "\\", "\0"):
        name = name.replace(bad, "_")
    if name in ("", ".", ".."):
        name = f"_{name}_"
    return name


def capture_record(time_us: int, msg_type: bytes, payload: bytes) -> bytes:
    """One message in Core's capture format (msg_type at most 12 bytes)."""
    if len(msg_type) > MSG_TYPE_SIZE:
        raise ValueError(f"message type {msg_type!r} is longer than {MSG_TYPE_SIZE} bytes")
    return _HEADER.pack(time_us, msg_type, len(payload)) + payload


@dataclass
class CaptureSummary:
    """What an export wrote, and what it could not."""

    messages: int = 0
    recv: int = 0
    sent: int = 0
    peers: int = 0
    nodes: list[str] = field(default_factory=list)
    truncated: int = 0  # messages whose payload was cut at capture
    truncated_written: int = 0  # of those, written with the captured bytes only (keep)
    truncated_skipped: int = 0  # of those, left out (skip)
    msg_type_cut: int = 0
    missing: int = 0  # seqs missing from the message streams (lost before Kafka)
    policy: str = Truncated.REFUSE.value

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CaptureWriter:
    """Append net message events to per-node, per-peer capture files under ``out``."""

    def __init__(self, out: Path, policy: Truncated = Truncated.REFUSE) -> None:
        self.out = out
        self.policy = policy
        self.summary = CaptureSummary(policy=policy.value)
        if out.exists() and any(out.iterdir()):
            raise ReplayError(f"{out} is not empty; export into a new or empty folder")
        self._created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        self._files: OrderedDict[Path, IO[bytes]] = OrderedDict()
        self._peers: set[tuple[str, str]] = set()
        self._nodes: set[str] = set()
        self._truncated_list: IO[str] | None = None

    def write(self, event: Event) -> None:
        name = FILE_BY_STREAM.get(event.stream)
        if name is None:
            return
        fields = event.fields
        payload: bytes = fields["msg"]
        msg_type = str(fields["msg_type"]).encode()
        if fields["msg_truncated"]:
            self._truncated(event, len(payload))
            if self.policy is Truncated.SKIP:
                self.summary.truncated_skipped += 1
                return
            self.summary.truncated_written += 1
        if len(msg_type) > MSG_TYPE_SIZE:
            msg_type = msg_type[:MSG_TYPE_SIZE]
            self.summary.msg_type_cut += 1
        node, peer = event.node_id, peer_folder(str(fields["peer_addr"]))
        path = self.out / peer_folder(node) / peer / name
        self._file(path).write(capture_record(event.ts_wall_ns // 1000, msg_type, payload))
        self._peers.add((node, peer))
        self._nodes.add(node)
        self.summary.messages += 1
        if name == "msgs_recv.dat":
            self.summary.recv += 1
        else:
            self.summary.sent += 1

    def _truncated(self, event: Event, captured: int) -> None:
        self.summary.truncated += 1
        fields = event.fields
        if self.policy is Truncated.REFUSE:
            self.abort()
            raise TruncatedCaptureError(
                f"{event.stream} seq {event.seq} ({fields['msg_type']} "
                f"{'from' if event.stream.startswith('net:in') else 'to'} "
                f"{fields['peer_addr']}) was captured truncated: {captured} of "
                f"{fields['msg_size']} payload bytes. Core's capture files hold whole "
                "payloads, so nothing was written. Use --truncated keep (captured bytes, "
                "length field = captured size) or --truncated skip (leave them out); both "
                f"list such messages in {TRUNCATED_LIST}. Or raise usdt.payload_capture_bytes."
            )
        if self._truncated_list is None:
            self._truncated_list = (self.out / TRUNCATED_LIST).open("w")
        entry = {
            "node_id": event.node_id,
            "peer": peer_folder(str(fields["peer_addr"])),
            "file": FILE_BY_STREAM[event.stream],
            "time_us": event.ts_wall_ns // 1000,
            "msg_type": fields["msg_type"],
            "msg_size": fields["msg_size"],
            "captured": captured,
            "action": "written with the captured bytes"
            if self.policy is Truncated.KEEP
            else "left out",
            "seq": event.seq,
            "session_id": event.session_id,
        }
        self._truncated_list.write(json.dumps(entry) + "\n")

    def _file(self, path: Path) -> IO[bytes]:
        handle = self._files.get(path)
        if handle is not None:
            self._files.move_to_end(path)
            return handle
        if len(self._files) >= MAX_OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("ab")  # as Core does: a peer seen again is appended to
        self._files[path] = handle
        return handle

    def close(self) -> CaptureSummary:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        if self._truncated_list is not None:
            self._truncated_list.close()
        self.summary.peers = len(self._peers)
        self.summary.nodes = sorted(self._nodes)
        (self.out / SUMMARY_FILE).write_text(json.dumps(self.summary.as_dict(), indent=2) + "\n")
        return self.summary

    def abort(self) -> None:
        """Close everything and remove what this export wrote."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        if self._truncated_list is not None:
            self._truncated_list.close()
        if self._created:
            shutil.rmtree(self.out, ignore_errors=True)
        else:
            for child in self.out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()


def export_capture(
    bootstrap_servers: str,
    topics: list[str],
    out: Path,
    *,
    policy: Truncated = Truncated.REFUSE,
    nodes: list[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    store: SchemaStore | None = None,
    consumer_config: dict[str, Any] | None = None,
) -> CaptureSummary:
    """Read the net message events of ``topics`` and write them as capture files."""
    writer = CaptureWriter(out, policy)
    stats = ReadStats()
    try:
        for event in read_events(
            bootstrap_servers,
            topics,
            nodes=nodes,
            streams=MESSAGE_STREAMS,
            start=start,
            end=end,
            store=store,
            stats=stats,
            consumer_config=consumer_config,
        ):
            writer.write(event)
    except BaseException:
        writer.abort()
        raise
    for key, trace in stats.traces.items():
        writer.summary.missing += find_gaps(
            key, trace, None, leading=start is None, trailing=False
        ).missing
    return writer.close()
