"""The reference decoder: round trips for every event, and every rejection reason."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from bridge.events.avro_values import as_long
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.decoder import (
    RecordDecodeError,
    decode_record,
    event_fields,
    trim_partial_utf8,
)
from bridge.events.layout import RecordFlag, compute_layout
from bridge.events.spec import EventSpec, FieldSpec, Kind
from tests.support.raw_records import build_record

HASH = bytes(range(32))


def extreme(field: FieldSpec, high: bool) -> Any:
    """A boundary value of the field's kind (the largest or the smallest)."""
    kind = field.kind
    if kind is Kind.I32:
        return 2**31 - 1 if high else -(2**31)
    if kind is Kind.U32:
        return 2**32 - 1 if high else 0
    if kind is Kind.I64:
        return 2**63 - 1 if high else -(2**63)
    if kind is Kind.U64:
        return 2**64 - 1 if high else 0
    if kind is Kind.BOOL:
        return high
    if kind is Kind.HASH32:
        return HASH if high else bytes(32)
    if kind is Kind.CSTR:
        assert field.max_len is not None
        return ("z" * field.max_len) if high else ""  # exactly at the bound, or empty
    return bytes(range(256)) * 3 if high else b""


def values_for(spec: EventSpec, high: bool) -> dict[str, Any]:
    values = {field.name: extreme(field, high) for field in spec.fields}
    payload = spec.payload_field
    if payload is not None:
        assert payload.length_of is not None
        values[payload.length_of] = len(values[payload.name])
    return values


@pytest.mark.parametrize("high", [True, False], ids=["high", "low"])
@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: s.name)
def test_round_trip(spec: EventSpec, high: bool) -> None:
    values = values_for(spec, high)
    raw = build_record(spec, values, seq=2**64 - 1, ktime_ns=123, lost_before=2**40)
    record = decode_record(raw)
    assert record.spec is spec
    assert record.header.seq == 2**64 - 1
    assert record.header.ktime_ns == 123
    assert record.header.lost_before == 2**40
    assert record.header.tp_id == spec.tp_id
    assert record.header.flags == 0
    assert record.values == values
    for field in spec.fields:  # the Python types, not just equal values
        if field.kind is Kind.BOOL:
            assert type(record.values[field.name]) is bool
        elif field.kind is Kind.CSTR:
            assert type(record.values[field.name]) is str


def test_round_trip_of_non_ascii_strings() -> None:
    spec = BY_NAME["net:misbehaving_connection"]
    reason = "héllo wörld ₿ 🚀"
    record = decode_record(build_record(spec, {"peer_id": -1, "reason": reason}))
    assert record.values == {"peer_id": -1, "reason": reason}


def test_string_longer_than_its_bound_is_cut_to_the_bound() -> None:
    spec = BY_NAME["mempool:rejected"]
    long = "r" * 500
    record = decode_record(build_record(spec, {"txid": HASH, "reason": long}))
    assert record.values["reason"] == "r" * 118


def test_multibyte_character_cut_at_the_bound_is_dropped() -> None:
    spec = BY_NAME["mempool:rejected"]
    reason = "r" * 117 + "€"  # 117 + 3 bytes; only the first byte of € fits in 118
    record = decode_record(build_record(spec, {"txid": HASH, "reason": reason}))
    assert record.values["reason"] == "r" * 117


def test_hand_packed_record_decodes() -> None:
    """Bytes packed here from the layout worked out by hand (see test_layout)."""
    raw = struct.pack("<QQQHHI", 5, 6, 7, 13, 0, 0) + struct.pack("<qi32s4x", -9, 141, HASH)
    record = decode_record(raw)
    assert record.spec.name == "mempool:added"
    assert record.values == {"txid": HASH, "vsize": 141, "fee": -9}
    assert (record.header.seq, record.header.ktime_ns, record.header.lost_before) == (5, 6, 7)


def test_payload_truncated_flag_is_not_a_rejection() -> None:
    spec = BY_NAME["net:outbound_message"]
    values = {
        "peer_id": 1,
        "peer_addr": "1.2.3.4:8333",
        "conn_type": "inbound",
        "msg_type": "block",
        "msg_size": 1_000_000,
        "msg": b"\x01" * 10,
    }
    raw = build_record(spec, values)
    record = decode_record(raw)
    assert record.header.flags == RecordFlag.PAYLOAD_TRUNCATED
    assert record.values["msg"] == b"\x01" * 10
    assert record.values["msg_size"] == 1_000_000
    fields = event_fields(record)
    assert fields["msg_truncated"] is True
    assert fields["conn_type"] == "INBOUND"
    assert fields["conn_type_raw"] is None


# ------------------------------------------------------------------ rejections


def added(**header: int) -> bytes:
    return build_record(BY_NAME["mempool:added"], {"txid": HASH, "vsize": 1, "fee": 2}, **header)


def rejection(raw: bytes) -> RecordDecodeError:
    with pytest.raises(RecordDecodeError) as caught:
        decode_record(raw)
    assert str(caught.value) == caught.value.reason
    assert isinstance(caught.value, ValueError)
    return caught.value


@pytest.mark.parametrize("size", [0, 1, 31])
def test_shorter_than_the_header(size: int) -> None:
    error = rejection(added()[:size])
    assert error.reason == f"record of {size} bytes is shorter than the header"
    assert (error.tp_id, error.seq) == (None, None)


def test_unknown_tracepoint_id() -> None:
    raw = bytearray(added(seq=77))
    raw[24:26] = (999).to_bytes(2, "little")
    error = rejection(bytes(raw))
    assert error.reason == "unknown tracepoint id 999"
    assert (error.tp_id, error.seq) == (None, 77)


def test_ipc_only_ids_are_unknown_in_a_ring() -> None:
    """IPC-only events share the id space but have no ring layout; the native reader
    rejects them as unknown, and the reference decoder must agree (found by hypothesis)."""
    ipc_only = BY_NAME["node:num_connections_changed"]
    raw = bytearray(added(seq=5))
    raw[24:26] = ipc_only.tp_id.to_bytes(2, "little")
    error = rejection(bytes(raw))
    assert error.reason == f"unknown tracepoint id {ipc_only.tp_id}"
    assert (error.tp_id, error.seq) == (None, 5)


def test_tp_id_zero_is_unknown() -> None:
    raw = bytearray(added())
    raw[24:26] = b"\0\0"
    assert rejection(bytes(raw)).reason == "unknown tracepoint id 0"


def test_shorter_than_the_fixed_part() -> None:
    raw = added(seq=3)
    error = rejection(raw[:79])
    assert error.reason == "record of 79 bytes is shorter than mempool:added's 80"
    assert (error.tp_id, error.seq) == (13, 3)
    assert rejection(raw[:32]).reason == "record of 32 bytes is shorter than mempool:added's 80"


def test_read_error_flag() -> None:
    error = rejection(added(seq=4, flags=RecordFlag.READ_ERROR))
    assert error.reason == "a pointer argument could not be read at the probe"
    assert (error.tp_id, error.seq) == (13, 4)
    both = RecordFlag.READ_ERROR | RecordFlag.PAYLOAD_TRUNCATED
    assert rejection(added(flags=both)).reason.startswith("a pointer argument")


def test_fixed_record_with_extra_bytes() -> None:
    error = rejection(added(seq=5) + b"\0")
    assert error.reason == "record of 81 bytes, mempool:added records are 80"
    assert (error.tp_id, error.seq) == (13, 5)


def message(payload: bytes) -> bytes:
    values = {
        "peer_id": 1,
        "peer_addr": "a",
        "conn_type": "manual",
        "msg_type": "ping",
        "msg_size": len(payload),
        "msg": payload,
    }
    return build_record(BY_NAME["net:inbound_message"], values, seq=6)


def test_payload_length_mismatch() -> None:
    raw = message(b"12345678")
    error = rejection(raw + b"9")
    assert error.reason == "field msg: 8 bytes captured but 9 present"
    assert (error.tp_id, error.seq) == (1, 6)
    assert rejection(raw[:-1]).reason == "field msg: 8 bytes captured but 7 present"
    # The captured-length slot says 8 and the fixed part is intact: a lying length is caught.
    slot = compute_layout(BY_NAME["net:inbound_message"]).slot("msg")
    lying = bytearray(raw)
    lying[slot.offset : slot.offset + 4] = (100).to_bytes(4, "little")
    assert rejection(bytes(lying)).reason == "field msg: 100 bytes captured but 8 present"


def test_empty_payload_is_fine() -> None:
    record = decode_record(message(b""))
    assert record.values["msg"] == b""


def test_string_without_nul() -> None:
    spec = BY_NAME["coin_selection:attempting_aps_create_tx"]
    raw = bytearray(build_record(spec, {"wallet_name": "w"}, seq=8))
    slot = compute_layout(spec).slot("wallet_name")
    raw[slot.offset : slot.offset + slot.size] = b"w" * slot.size
    error = rejection(bytes(raw))
    assert error.reason == "field wallet_name: string is not NUL-terminated"
    assert (error.tp_id, error.seq) == (19, 8)


def test_invalid_utf8() -> None:
    spec = BY_NAME["coin_selection:attempting_aps_create_tx"]
    error = rejection(build_record(spec, {"wallet_name": b"ok\xff\xfe"}, seq=9))
    assert error.reason == "field wallet_name: not valid UTF-8"
    assert (error.tp_id, error.seq) == (19, 9)


def test_partial_character_before_the_bound_is_invalid() -> None:
    """Only a string filled to its bound may end in a cut character."""
    spec = BY_NAME["coin_selection:attempting_aps_create_tx"]
    raw = build_record(spec, {"wallet_name": b"abc\xe2\x82"})
    assert rejection(raw).reason == "field wallet_name: not valid UTF-8"


def test_first_bad_field_in_catalogue_order_is_reported() -> None:
    spec = BY_NAME["coin_selection:selected_coins"]
    values = {
        "wallet_name": b"\xff",
        "algorithm": b"\xff",
        "target": 0,
        "waste": 0,
        "selected_value": 0,
    }
    assert rejection(build_record(spec, values)).reason == "field wallet_name: not valid UTF-8"


# ------------------------------------------------------------------ trim_partial_utf8


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),
        (b"abc", b"abc"),
        (b"a\xc3", b"a"),  # lead of a 2-byte char, nothing after it
        (b"a\xc3\xa9", b"a\xc3\xa9"),  # complete é
        (b"\xe2", b""),
        (b"x\xe2\x82", b"x"),  # 2 of the 3 bytes of €
        (b"x\xe2\x82\xac", b"x\xe2\x82\xac"),  # complete €
        (b"y\xf0", b"y"),  # 1 of the 4 bytes of 🚀
        (b"y\xf0\x9f", b"y"),
        (b"y\xf0\x9f\x9a", b"y"),
        (b"y\xf0\x9f\x9a\x80", b"y\xf0\x9f\x9a\x80"),  # complete 🚀
        (b"a\x80", b"a\x80"),  # stray continuation: left for the UTF-8 check to reject
        (b"\x80\x80\x80\x80\x80", b"\x80\x80\x80\x80\x80"),
        (b"\xc3\xa9\xc3", b"\xc3\xa9"),  # only the incomplete last character goes
    ],
)
def test_trim_partial_utf8(data: bytes, expected: bytes) -> None:
    assert trim_partial_utf8(data) == expected


# ------------------------------------------------------------------ Avro mapping helpers


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (5, 5), (2**63 - 1, 2**63 - 1), (2**63, -(2**63)), (2**64 - 1, -1)],
)
def test_as_long(value: int, expected: int) -> None:
    assert as_long(value) == expected


def test_event_fields_mapping() -> None:
    spec = BY_NAME["utxocache:flush"]
    values = {
        "duration_us": -1,
        "mode": 3,
        "coins_count": 2**64 - 1,
        "coins_mem_usage": 7,
        "is_flush_for_prune": False,
    }
    fields = event_fields(decode_record(build_record(spec, values)))
    assert fields == {
        "duration_us": -1,
        "mode": "FORCE_FLUSH",
        "mode_raw": None,
        "coins_count": -1,  # u64 stored as the long with the same bits
        "coins_mem_usage": 7,
        "is_flush_for_prune": False,
    }
    values["mode"] = 77
    unknown = event_fields(decode_record(build_record(spec, values)))
    assert (unknown["mode"], unknown["mode_raw"]) == ("UNKNOWN", 77)


def test_hash_hex_is_byte_reversed() -> None:
    spec = BY_NAME["validation:block_connected"]
    block_hash = bytes.fromhex("00" * 28 + "0a0b0c0d")
    values = {
        "block_hash": block_hash,
        "height": 1,
        "transactions": 1,
        "inputs": 1,
        "sigops": 4,
        "duration_ns": 10,
    }
    fields = event_fields(decode_record(build_record(spec, values)))
    assert fields["block_hash"] == block_hash
    assert fields["block_hash_hex"] == "0d0c0b0a" + "00" * 28


def test_unknown_string_enum_keeps_the_raw_text() -> None:
    spec = BY_NAME["mempool:removed"]
    values = {"txid": HASH, "reason": "newreason", "vsize": 1, "fee": 1, "entry_time": 1}
    fields = event_fields(decode_record(build_record(spec, values)))
    assert (fields["reason"], fields["reason_raw"]) == ("UNKNOWN", "newreason")
    values["reason"] = "sizelimit"  # exactly the 9-character bound
    fields = event_fields(decode_record(build_record(spec, values)))
    assert (fields["reason"], fields["reason_raw"]) == ("SIZELIMIT", None)
