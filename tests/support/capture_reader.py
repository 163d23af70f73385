"""An independent reader of Bitcoin Core's -capturemessages files (tests only).

Written from the format, not from the exporter: each message is an 8-byte little-endian
time in microseconds, a 12-byte NUL-padded message type, a 4-byte little-endian payload
length, then the payload. A file must end exactly at a message boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CapturedMessage:
    time_us: int
    msg_type: str
    payload: bytes


def read_capture_file(path: Path) -> list[CapturedMessage]:
    data = path.read_bytes()
    out = []
    at = 0
    while at < len(data):
        if len(data) - at < 24:
            raise ValueError(f"{path}: {len(data) - at} stray bytes at {at}")
        time_us = int.from_bytes(data[at : at + 8], "little")
        raw_type = data[at + 8 : at + 20]
        length = int.from_bytes(data[at + 20 : at + 24], "little")
        name, _, padding = raw_type.partition(b"\0")
        if padding.strip(b"\0"):
            raise ValueError(f"{path}: message type {raw_type!r} is not NUL-padded")
        payload = data[at + 24 : at + 24 + length]
        if len(payload) != length:
            raise ValueError(f"{path}: payload of {length} bytes runs past the end")
        out.append(CapturedMessage(time_us, name.decode("ascii"), payload))
        at += 24 + length
    return out


def read_capture_dir(root: Path) -> dict[tuple[str, str], list[CapturedMessage]]:
    """(peer folder, file name) -> messages, for one node's capture folder."""
    return {
        (path.parent.name, path.name): read_capture_file(path)
        for path in sorted(root.glob("*/msgs_*.dat"))
    }
