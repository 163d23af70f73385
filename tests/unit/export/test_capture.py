"""Core's capture format, written by the exporter and read back by an independent reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.export.capture import (
    SUMMARY_FILE,
    TRUNCATED_LIST,
    CaptureWriter,
    Truncated,
    TruncatedCaptureError,
    capture_record,
    peer_folder,
)
from bridge.replay.events import Envelope, Event
from tests.support.capture_reader import read_capture_dir, read_capture_file


def message(
    seq: int,
    *,
    inbound: bool = True,
    peer: str = "203.0.113.7:8333",
    msg_type: str = "ping",
    payload: bytes = b"12345678",
    size: int | None = None,
    node: str = "node-a",
) -> Event:
    stream = "net:inbound_message" if inbound else "net:outbound_message"
    envelope: Envelope = {
        "node_id": node,
        "source": "USDT",
        "session_id": "s",
        "stream": stream,
        "seq": seq,
        "ts_mono_ns": seq,
        "ts_wall_ns": 1_790_000_000_123_456_789 + seq * 1000,
        "lost_before": 0,
        "lost": {"kernel": 0, "bridge": 0, "producer": 0, "node": 0},
    }
    fields = {
        "peer_id": 1,
        "peer_addr": peer,
        "conn_type": "INBOUND",
        "conn_type_raw": None,
        "msg_type": msg_type,
        "msg_size": len(payload) if size is None else size,
        "msg": payload,
        "msg_truncated": size is not None and size > len(payload),
    }
    return Event("tracebridge.net.InboundMessage", envelope, fields, "t.net", 0, seq, 0)


def test_record_layout_is_cores() -> None:
    raw = capture_record(0x0102030405060708, b"verack", b"")
    assert raw == bytes.fromhex("0807060504030201") + b"verack" + bytes(6) + bytes(4)
    raw = capture_record(1, b"ping", b"\xaa\xbb")
    assert raw[20:24] == (2).to_bytes(4, "little")
    assert raw[24:] == b"\xaa\xbb"
    with pytest.raises(ValueError, match="longer than 12"):
        capture_record(1, b"thirteen-char", b"")


def test_peer_folders_follow_cores_naming() -> None:
    assert peer_folder("203.0.113.7:8333") == "203.0.113.7_8333"
    assert peer_folder("[2001:db8::1]:8333") == "[2001_db8__1]_8333"
    assert peer_folder("../../etc/passwd") == ".._.._etc_passwd"
    assert peer_folder("..") == "_.._"


def test_messages_land_per_node_peer_and_direction(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "out")
    writer.write(message(1))
    writer.write(message(1, inbound=False, msg_type="pong"))
    writer.write(message(2, peer="[2001:db8::1]:8333", msg_type="version", payload=b"v" * 100))
    writer.write(message(3, msg_type="verack", payload=b""))
    writer.write(message(1, node="node-b"))
    summary = writer.close()
    assert (summary.messages, summary.recv, summary.sent, summary.peers) == (5, 4, 1, 3)
    node_a = read_capture_dir(tmp_path / "out" / "node-a")
    assert sorted(node_a) == [
        ("203.0.113.7_8333", "msgs_recv.dat"),
        ("203.0.113.7_8333", "msgs_sent.dat"),
        ("[2001_db8__1]_8333", "msgs_recv.dat"),
    ]
    recv = node_a[("203.0.113.7_8333", "msgs_recv.dat")]
    assert [(m.msg_type, m.payload) for m in recv] == [("ping", b"12345678"), ("verack", b"")]
    assert recv[0].time_us == (1_790_000_000_123_456_789 + 1000) // 1000
    assert node_a[("203.0.113.7_8333", "msgs_sent.dat")][0].msg_type == "pong"
    assert read_capture_dir(tmp_path / "out" / "node-b")
    assert json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())["messages"] == 5


def test_truncated_message_is_refused_by_default_and_nothing_is_left(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "out")
    writer.write(message(1))
    with pytest.raises(TruncatedCaptureError, match="captured truncated: 8 of 4000"):
        writer.write(message(2, size=4000))
    assert not (tmp_path / "out").exists()


def test_truncated_message_kept_has_the_captured_length_and_is_listed(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "out", Truncated.KEEP)
    writer.write(message(1, msg_type="block", payload=b"b" * 512, size=900_000))
    writer.write(message(2))
    summary = writer.close()
    assert (summary.truncated, summary.truncated_written, summary.messages) == (1, 1, 2)
    messages = read_capture_file(tmp_path / "out/node-a/203.0.113.7_8333/msgs_recv.dat")
    assert [(m.msg_type, len(m.payload)) for m in messages] == [("block", 512), ("ping", 8)]
    (listed,) = [
        json.loads(line) for line in (tmp_path / "out" / TRUNCATED_LIST).read_text().splitlines()
    ]
    assert (listed["msg_size"], listed["captured"], listed["msg_type"]) == (900_000, 512, "block")


def test_truncated_message_skipped_is_left_out_and_listed(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "out", Truncated.SKIP)
    writer.write(message(1, size=10_000))
    writer.write(message(2))
    summary = writer.close()
    assert (summary.truncated, summary.truncated_skipped, summary.messages) == (1, 1, 1)
    messages = read_capture_file(tmp_path / "out/node-a/203.0.113.7_8333/msgs_recv.dat")
    assert [m.payload for m in messages] == [b"12345678"]
    assert (tmp_path / "out" / TRUNCATED_LIST).read_text().count("\n") == 1


def test_export_refuses_a_folder_with_something_in_it(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="not empty"):
        CaptureWriter(tmp_path)
