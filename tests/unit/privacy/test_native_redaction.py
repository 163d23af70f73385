"""The native encoder's redaction against the Python reference (bridge/privacy/reference.py).

Same keyed hash, same prefixes, same port rule: on bare addresses (every form Bitcoin
Core writes, and arbitrary text), on whole ring records of every tracepoint, and on
IPC NetMessage batches read from Cap'n Proto bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codec.native import Encoder
from bridge.codec.single_object import committed_schemas
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.avro_values import as_long
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.decoder import RecordDecodeError, decode_record, event_fields
from bridge.privacy.apply import ADDRESS_MESSAGE_TYPES
from bridge.privacy.reference import Mode, Redaction
from tests.support.raw_records import build_record
from tests.unit.codec import test_ipc_paths as ipc
from tests.unit.codec import test_native_encoder as usdt

KEY = b"0123456789abcdef-honeynode-key"

ports = st.integers(0, 65535).map(str)
ipv4 = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
ipv6 = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**16 - 1).map(lambda i: i << 112),  # mostly zeros: '::' runs
    st.integers(0, 2**120 - 1).map(lambda i: (0xFC << 120) | i),  # CJDNS
).map(lambda i: ipaddress.IPv6Address(i))
ipv6_text = st.one_of(ipv6.map(str), ipv6.map(lambda a: a.exploded))
hosts = st.one_of(
    ipv4,
    ipv6_text.map(lambda a: f"[{a}]"),
    ipv6_text,
    st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=1, max_size=56).map(
        lambda h: h + ".onion"
    ),
    st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=1, max_size=52).map(
        lambda h: h + ".b32.i2p"
    ),
    st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True),
)
addresses = st.one_of(
    st.tuples(hosts, ports).map(lambda hp: f"{hp[0]}:{hp[1]}"),
    hosts,
    st.text(max_size=80),  # anything the node might send, or a ring string cut short
    st.text("0123456789abcdef:.[]%", max_size=50),
)
redactions = st.builds(
    Redaction,
    mode=st.sampled_from([Mode.HASH, Mode.TRUNCATE]),
    key=st.binary(min_size=1, max_size=130),  # longer than a block: hashed first
    keep_port=st.booleans(),
    ipv4_bits=st.integers(0, 32),
    ipv6_bits=st.integers(0, 128),
)


def native_encoder(redaction: Redaction) -> Encoder:
    encoder = usdt.fresh_encoder()
    apply(encoder, redaction)
    return encoder


def apply(encoder: Encoder, redaction: Redaction) -> None:
    encoder.set_redaction(
        int(redaction.mode),
        redaction.key,
        redaction.keep_port,
        redaction.ipv4_bits,
        redaction.ipv6_bits,
        ADDRESS_MESSAGE_TYPES,
    )


@settings(max_examples=2000, deadline=None)
@given(redactions, addresses)
def test_native_redacts_addresses_as_the_reference(redaction: Redaction, address: str) -> None:
    assert native_encoder(redaction).redact_address(address) == redaction.address(address)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.text(max_size=300))
def test_keyed_hash_is_hmac_sha256(key: bytes, text: str) -> None:
    """Hosts of any length (IPC text is unbounded) and keys of any length."""
    host = text.replace(":", "").lstrip("[")  # all host: no port to split off
    expected = hmac.new(key, host.encode(), hashlib.sha256).hexdigest()[:32]
    assert native_encoder(Redaction(Mode.HASH, key)).redact_address(host) == (
        "hmac-sha256=" + expected
    )


@pytest.mark.parametrize(
    ("address", "hashed_host", "truncated", "truncated_with_port"),
    [
        ("203.0.113.77:8333", "203.0.113.77", "203.0.113.0/24", "203.0.113.0/24:8333"),
        ("[2001:db8:1:2::5]:8333", "2001:db8:1:2::5", "[2001:db8:1::]/48", None),
        ("[2001:db8::5]:18444", "2001:db8::5", "[2001:db8::]/48", None),
        ("[fc32:17ea:e415:c3bf::1]:8333", "fc32:17ea:e415:c3bf::1", "[fc00::]/8", None),
        (
            "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion:8333",
            None,
            "*.onion",
            None,
        ),
        ("ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p:0", None, "*.i2p", None),
        ("seed.example.org:8333", "seed.example.org", "*", "*:8333"),
        ("10.0.0.1", "10.0.0.1", "10.0.0.0/24", "10.0.0.0/24"),
        ("2001:db8::1", "2001:db8::1", "[2001:db8::]/48", None),
    ],
)
def test_documented_forms(
    address: str, hashed_host: str | None, truncated: str, truncated_with_port: str | None
) -> None:
    truncate = native_encoder(Redaction(Mode.TRUNCATE))
    assert truncate.redact_address(address) == truncated
    if truncated_with_port is not None:
        with_port = native_encoder(Redaction(Mode.TRUNCATE, keep_port=True))
        assert with_port.redact_address(address) == truncated_with_port
    if hashed_host is not None:
        mac = hmac.new(KEY, hashed_host.encode(), hashlib.sha256).hexdigest()[:32]
        assert native_encoder(Redaction(Mode.HASH, KEY)).redact_address(address) == (
            f"hmac-sha256={mac}"
        )


def test_off_by_default_and_bad_settings_refused() -> None:
    encoder = usdt.fresh_encoder()
    assert encoder.redaction_mode() == 0
    assert encoder.redact_address("1.2.3.4:8333") == "1.2.3.4:8333"
    for bad in (
        (1, b"", False, 24, 48, ()),  # a hash needs a key
        (3, KEY, False, 24, 48, ()),
        (2, b"", False, 33, 48, ()),
        (2, b"", False, 24, 129, ()),
        (2, b"", False, 24, 48, ("x",) * 9),
    ):
        with pytest.raises(ValueError, match="bad redaction"):
            encoder.set_redaction(*bad)
    assert encoder.redaction_mode() == 0


# ------------------------------------------------------------------ whole records


def redacted_fields(
    fields: dict[str, Any], redaction: Redaction, address_fields: set[str]
) -> dict[str, Any]:
    out = dict(fields)
    for name in address_fields & set(out):
        out[name] = redaction.address(out[name])
    if out.get("msg_type") in ADDRESS_MESSAGE_TYPES and "msg" in out:
        out["msg"] = b""
        out["msg_truncated"] = out["msg_size"] != 0
    return out


def usdt_reference(raw: bytes, redaction: Redaction) -> tuple[bytes | None, str | None]:
    """The readable path's record, redacted by the Python reference."""
    try:
        record = decode_record(raw)
    except RecordDecodeError as error:
        return None, error.reason
    lost_before = as_long(record.header.lost_before)
    envelope = {
        "node_id": usdt.NODE,
        "source": "USDT",
        "session_id": usdt.SESSION,
        "stream": record.spec.name,
        "seq": as_long(record.header.seq),
        "ts_mono_ns": as_long(record.header.ktime_ns),
        "ts_wall_ns": as_long(record.header.ktime_ns + usdt.WALL_OFFSET),
        "lost_before": lost_before,
        "lost": {"kernel": lost_before, "bridge": 0, "producer": 0, "node": 0},
    }
    addresses_of = {f.name for f in record.spec.fields if f.address}
    fields = redacted_fields(event_fields(record), redaction, addresses_of)
    name = full_name(event_schema(record.spec))
    return committed_schemas().encode(name, {"envelope": envelope, **fields}), None


net_specs = [spec for spec in EVENTS if any(f.address for f in spec.fields)]


@st.composite
def net_records(draw: st.DrawFn) -> bytes:
    spec = draw(st.sampled_from(net_specs))
    values = draw(usdt.event_values(spec))
    values["peer_addr"] = draw(addresses)
    if "msg_type" in values:
        values["msg_type"] = draw(st.sampled_from([*ADDRESS_MESSAGE_TYPES, "ping", "tx", "addr2"]))
    return build_record(spec, values, seq=draw(st.integers(1, 2**40)))


@settings(max_examples=600, deadline=None)
@given(redactions, net_records())
def test_ring_records_redacted_as_the_reference(redaction: Redaction, raw: bytes) -> None:
    good, dead = native_encoder(redaction).encode_one(raw)
    native = (good[0][1], None) if good else (None, dead[0][3])
    assert native == usdt_reference(raw, redaction)


def test_no_address_byte_leaves_a_ring_record() -> None:
    """Fails without redaction: the address and the version payload are in the value."""
    spec = BY_NAME["net:inbound_message"]
    version_payload = b"\x80\x11\x01\x00" + bytes([203, 0, 113, 77]) * 8
    values = {
        "peer_id": 7,
        "peer_addr": "203.0.113.77:8333",
        "conn_type": "inbound",
        "msg_type": "version",
        "msg_size": len(version_payload),
        "msg": version_payload,
    }
    raw = build_record(spec, values)
    plain, _ = usdt.fresh_encoder().encode_one(raw)
    assert b"203.0.113.77" in plain[0][1]
    assert bytes([203, 0, 113, 77]) in plain[0][1]
    for mode in (Mode.HASH, Mode.TRUNCATE):
        good, dead = native_encoder(Redaction(mode, KEY)).encode_one(raw)
        assert not dead
        value = good[0][1]
        assert b"203.0.113.77" not in value
        assert bytes([203, 0, 113, 77]) not in value


# ------------------------------------------------------------------ IPC NetMessage batches

schema = ipc.schema  # the Cap'n Proto test schema (a module fixture)

ipc_messages = ipc.message_values.flatmap(
    lambda m: st.tuples(
        addresses, st.sampled_from([*ADDRESS_MESSAGE_TYPES, "ping", "inv", ""])
    ).map(lambda extra: {**m, "peerAddr": extra[0], "msgType": extra[1]})
)


@pytest.mark.ipc
@settings(max_examples=100, deadline=None)
@given(redactions, st.lists(ipc_messages, max_size=20), st.integers(0, 3))
def test_capnp_batches_redacted_as_the_reference(
    schema: Any, redaction: Redaction, messages: list[dict[str, Any]], dropped: int
) -> None:
    enc = ipc.net_encoder(schema)
    apply(enc, redaction)
    good, dead = enc.encode_capnp_list(
        ipc.LIST_ID, ipc.build(schema, messages), dropped, 0, len(messages)
    )
    assert not dead
    redacted = [
        {
            **m,
            "peerAddr": redaction.address(m["peerAddr"]),
            "payload": b"" if m["msgType"] in ADDRESS_MESSAGE_TYPES else m["payload"],
            "extra": m["extra"]
            + (len(m["payload"]) if m["msgType"] in ADDRESS_MESSAGE_TYPES else 0),
        }
        for m in messages
    ]
    assert [value for _, value, _ in good] == ipc.reference(redacted, dropped)


@settings(max_examples=30, deadline=None)
@given(redactions, st.lists(addresses, min_size=1, max_size=60), st.randoms())
def test_one_encoder_over_many_addresses(
    redaction: Redaction, distinct: list[str], random: Any
) -> None:
    """The encoder keeps recent results: repeats, slot collisions and a new key or mode
    must all still give the reference's answer."""
    encoder = native_encoder(redaction)
    stream = [random.choice(distinct) for _ in range(1500)]
    assert [encoder.redact_address(a) for a in stream] == [redaction.address(a) for a in stream]
    other = Redaction(Mode.HASH, redaction.key + b"!", keep_port=not redaction.keep_port)
    apply(encoder, other)
    assert [encoder.redact_address(a) for a in distinct] == [other.address(a) for a in distinct]
