"""Records Python encodes (IPC snapshots) are redacted by the encoder's own rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.codec.native import Encoder
from bridge.codec.single_object import committed_schemas
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import SourceKind
from bridge.privacy.apply import configure_encoder, redaction_of
from bridge.privacy.reference import Mode, Redaction
from bridge.privacy.settings import PrivacyConfig
from bridge.sources.ipc.emitter import Emitter

SESSION = "5e55104e-0000-4000-8000-000000000001"
SUBNET = bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 7]) + b"\xff" * 16 + b"\x01"


def peer(peer_id: int, addr: str) -> dict[str, Any]:
    return {
        "peer_id": peer_id,
        "addr": addr,
        "inbound": True,
        "conn_type": 0,
        "network": 1,
        "version": 70016,
        "subver": "/Satoshi:30.0.0/",
        "services": 0,
        "starting_height": 100,
        "bytes_sent": 1,
        "bytes_recv": 2,
        "ping_time_us": 3,
        "min_ping_time_us": 1,
        "time_connected": 1_700_000_000,
        "last_send": 1_700_000_001,
        "last_recv": 1_700_000_001,
        "bip152_hb_to": False,
        "bip152_hb_from": False,
        "relay_txes": True,
    }


def emitter(privacy: PrivacyConfig) -> Emitter:
    store = committed_schemas()
    encoder = Encoder()
    encoder.set_session("n", SourceKind.IPC, SESSION, 0)
    configure_encoder(encoder, redaction_of(privacy))
    for name in ("node:peers", "node:network_stats"):
        spec = BY_NAME[name]
        encoder.configure_sequence(spec.tp_id, spec.name)
        header = store.by_name(full_name(event_schema(spec))).header
        encoder.configure_stream(spec.tp_id, header, spec.tp_id, 0, [])
    return Emitter(encoder, store, 1000)


def snapshots(privacy: PrivacyConfig) -> list[dict[str, Any]]:
    out = emitter(privacy)
    out.body(
        BY_NAME["node:peers"], {"peers": [peer(1, "10.1.2.3:8333"), peer(2, "[2001:db8::7]:1")]}
    )
    out.body(
        BY_NAME["node:network_stats"],
        {
            "network_active": True,
            "connections_in": 1,
            "connections_out": 1,
            "bytes_recv": 5,
            "bytes_sent": 6,
            "banned": [{"subnet": SUBNET, "entry": b"\x01" * 20}],
        },
    )
    good, dead = out.take(10)
    assert not dead
    return [committed_schemas().decode(value)[1] for _, value, _ in good]


def test_without_redaction_the_addresses_are_kept() -> None:
    peers, network = snapshots(PrivacyConfig())
    assert [p["addr"] for p in peers["peers"]] == ["10.1.2.3:8333", "[2001:db8::7]:1"]
    assert network["banned"][0]["subnet"] == SUBNET


def test_peers_truncated_and_subnets_withheld() -> None:
    peers, network = snapshots(PrivacyConfig(peer_addr="truncate"))
    assert [p["addr"] for p in peers["peers"]] == ["10.1.2.0/24", "[2001:db8::]/48"]
    assert network["banned"] == [{"subnet": b"", "entry": b"\x01" * 20}]


def test_peers_hashed_as_the_reference(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    peers, _ = snapshots(PrivacyConfig(peer_addr="hash", key_file=key))
    reference = Redaction(Mode.HASH, b"k" * 32)
    assert [p["addr"] for p in peers["peers"]] == [
        reference.address("10.1.2.3:8333"),
        reference.address("[2001:db8::7]:1"),
    ]
