"""What privacy.peer_addr costs the hot path, in µs per record.

The same net:inbound_message ring records (8-byte ping payloads, peers spread over
IPv4, IPv6 and onion addresses as a real node's are) are encoded by the native
encoder with redaction off, 'hash' and 'truncate'. Each run calls ``encode_one`` per
record, so the per-call Python cost is in every column alike and the differences are
redaction's own. Best of several rounds, as the VM's speed drifts.

    .venv/bin/python -m bridge.bench.redaction
"""

from __future__ import annotations

import struct
import time

from bridge.codec.native import Encoder, configure
from bridge.codec.single_object import committed_schemas
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import SourceKind
from bridge.events.layout import compute_layout, struct_format
from bridge.privacy.apply import ADDRESS_MESSAGE_TYPES
from bridge.privacy.reference import Mode

SPEC = BY_NAME["net:inbound_message"]
RECORDS = 100_000
ROUNDS = 7
KEY = b"bench-key-0123456789abcdef"


def _address(i: int) -> bytes:
    kind = i % 10
    if kind < 7:
        host = f"{1 + i % 223}.{i // 7 % 256}.{i // 13 % 256}.{1 + i % 254}"
        return f"{host}:{1024 + i % 60000}".encode()
    if kind < 9:
        return f"[2001:db8:{i % 65536:x}:{i // 3 % 65536:x}::{i % 4096:x}]:8333".encode()
    return f"{i:056x}.onion:8333".encode()  # a v3 onion's 56 characters


def records(count: int, peers: int) -> list[bytes]:
    """Ring records as the BPF program lays them out, from ``peers`` peers in turn."""
    layout = compute_layout(SPEC)
    fmt = struct_format(layout)
    out = []
    for i in range(count):
        values = {
            "peer_id": i % peers,
            "peer_addr": _address(i % peers),
            "conn_type": b"inbound",
            "msg_type": b"ping",
            "msg_size": 8,
            "msg": 8,
        }
        items = []
        for slot in layout.slots:
            value = values[slot.field.name]
            items.append(
                value[: slot.size - 1].ljust(slot.size, b"\0")
                if isinstance(value, bytes)
                else value
            )
        out.append(struct.pack(fmt, i + 1, 1_000 + i, 0, SPEC.tp_id, 0, 0, *items) + bytes(8))
    return out


def _encoder(mode: Mode) -> Encoder:
    encoder = Encoder()
    configure(encoder, [SPEC], committed_schemas())
    encoder.set_session("bench", SourceKind.USDT, "00000000-0000-4000-8000-000000000000", 0)
    if mode is not Mode.NONE:
        encoder.set_redaction(int(mode), KEY, False, 24, 48, ADDRESS_MESSAGE_TYPES)
    return encoder


def per_record_us(mode: Mode, raw: list[bytes]) -> float:
    """Best µs per record over ROUNDS runs (a fresh session each, so seqs start at 1)."""
    best = float("inf")
    for _ in range(ROUNDS):
        encode = _encoder(mode).encode_one
        started = time.perf_counter()
        for record in raw:
            encode(record)
        best = min(best, time.perf_counter() - started)
    return best / len(raw) * 1e6


def main() -> None:
    print("| peers | privacy.peer_addr | µs/record (encode_one) | added by redaction |")
    print("|---|---|---|---|")
    # A full node's 125 connections; then every record from a new address (no cache hit).
    for peers, label in ((125, "125"), (RECORDS, "all new")):
        raw = records(RECORDS, peers)
        base = per_record_us(Mode.NONE, raw)
        print(f"| {label} | none | {base:.3f} | - |")
        for mode in (Mode.HASH, Mode.TRUNCATE):
            cost = per_record_us(mode, raw)
            print(f"| {label} | {mode.name.lower()} | {cost:.3f} | {cost - base:+.3f} |")


if __name__ == "__main__":
    main()
