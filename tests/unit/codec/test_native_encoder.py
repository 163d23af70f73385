"""The C encoder must write exactly what the reference decoder + fastavro write.

This is the check that keeps the hot path honest: for every tracepoint, random field
values (and random corruptions) go through both paths; the outputs must be
byte-identical, or both paths must reject the record with the same reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codec.native import Encoder, configure
from bridge.codec.single_object import committed_schemas
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.avro_values import as_long
from bridge.events.catalog import BY_NAME, EVENTS, IPC_EVENTS
from bridge.events.decoder import RecordDecodeError, decode_record, event_fields
from bridge.events.envelope import LossStage, SourceKind
from bridge.events.spec import EventSpec, FieldSpec, Kind
from tests.support.raw_records import build_record

NODE, SESSION, WALL_OFFSET = "node-a", "2b1f6a8e-0000-4000-8000-000000000001", 1_700_000_000 * 10**9


def fresh_encoder() -> Encoder:
    encoder = Encoder()
    configure(encoder, EVENTS, committed_schemas())
    encoder.set_session(NODE, SourceKind.USDT, SESSION, WALL_OFFSET)
    return encoder


def field_strategy(spec: FieldSpec) -> st.SearchStrategy[Any]:
    if spec.kind is Kind.I32:
        base: st.SearchStrategy[Any] = st.integers(-(2**31), 2**31 - 1)
    elif spec.kind is Kind.U32:
        base = st.integers(0, 2**32 - 1)
    elif spec.kind is Kind.I64:
        base = st.integers(-(2**63), 2**63 - 1)
    elif spec.kind is Kind.U64:
        base = st.integers(0, 2**64 - 1)
    elif spec.kind is Kind.BOOL:
        base = st.booleans()
    elif spec.kind is Kind.HASH32:
        base = st.binary(min_size=32, max_size=32)
    elif spec.kind is Kind.CSTR:
        assert spec.max_len is not None
        base = st.text(max_size=spec.max_len + 5) | st.binary(max_size=spec.max_len + 2)
    else:
        base = st.binary(max_size=600)
    if spec.enum is not None:
        known = st.sampled_from([value for value, _ in spec.enum.values])
        return st.one_of(known, base)
    return base


@st.composite
def event_values(draw: st.DrawFn, spec: EventSpec) -> dict[str, Any]:
    values = {f.name: draw(field_strategy(f)) for f in spec.fields}
    payload = spec.payload_field
    if payload is not None:
        assert payload.length_of is not None
        values[payload.length_of] = len(values[payload.name]) + draw(
            st.sampled_from([0, 0, 1, 10_000])
        )
    return values


def reference(raw: bytes) -> tuple[bytes | None, str | None]:
    """What the readable path makes of one record on a fresh session."""
    try:
        record = decode_record(raw)
    except RecordDecodeError as error:
        return None, error.reason
    lost_before = as_long(record.header.lost_before)
    envelope = {
        "node_id": NODE,
        "source": "USDT",
        "session_id": SESSION,
        "stream": record.spec.name,
        "seq": as_long(record.header.seq),
        "ts_mono_ns": as_long(record.header.ktime_ns),
        "ts_wall_ns": as_long(record.header.ktime_ns + WALL_OFFSET),
        "lost_before": lost_before,
        "lost": {"kernel": lost_before, "bridge": 0, "producer": 0, "node": 0},
    }
    value = {"envelope": envelope, **event_fields(record)}
    name = full_name(event_schema(record.spec))
    return committed_schemas().encode(name, value), None


def native(raw: bytes) -> tuple[bytes | None, str | None]:
    good, dead = fresh_encoder().encode_one(raw)
    if good:
        assert not dead
        return good[0][1], None
    return None, dead[0][3]


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    spec = draw(st.sampled_from(EVENTS))
    return build_record(
        spec,
        draw(event_values(spec)),
        seq=draw(st.integers(1, 2**63 - 1)),
        ktime_ns=draw(st.integers(0, 2**62)),
        lost_before=draw(st.integers(0, 2**40)),
    )


@settings(max_examples=600, deadline=None)
@given(raw_records())
def test_native_matches_reference_on_well_formed_records(raw: bytes) -> None:
    assert native(raw) == reference(raw)


@settings(max_examples=600, deadline=None)
@given(raw_records(), st.data())
def test_native_matches_reference_on_corrupted_records(raw: bytes, data: st.DataObject) -> None:
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([None, 0, 8, 31, len(raw) - 1]))
    blob = bytes(mutated if cut is None else mutated[:cut])
    assert native(blob) == reference(blob)


@pytest.mark.parametrize("spec", IPC_EVENTS, ids=lambda spec: spec.name)
def test_native_and_reference_reject_ipc_only_ids_alike(spec: EventSpec) -> None:
    raw = bytearray(168)  # any length: the id is checked before the layout
    raw[24:26] = spec.tp_id.to_bytes(2, "little")
    assert (
        native(bytes(raw)) == reference(bytes(raw)) == (None, f"unknown tracepoint id {spec.tp_id}")
    )


def every_kind_example() -> bytes:
    """A record using hashes, strings, enums (known and unknown) and a payload."""
    spec = BY_NAME["net:inbound_message"]
    return build_record(
        spec,
        {
            "peer_id": -(2**63),
            "peer_addr": "x" * 68,
            "conn_type": "private-broadcast",
            "msg_type": "pong",
            "msg_size": 2**64 - 1,
            "msg": bytes(range(200)),
        },
    )


def test_unknown_enum_value_is_kept_raw() -> None:
    spec = BY_NAME["utxocache:flush"]
    raw = build_record(
        spec,
        {
            "duration_us": 5,
            "mode": 9,
            "coins_count": 1,
            "coins_mem_usage": 2,
            "is_flush_for_prune": True,
        },
    )
    value, reason = native(raw)
    assert reason is None
    assert value is not None
    _, decoded = committed_schemas().decode(value)
    assert decoded["mode"] == "UNKNOWN"
    assert decoded["mode_raw"] == 9
    assert native(every_kind_example()) == reference(every_kind_example())


def test_multibyte_character_cut_at_the_bound_is_truncation_not_corruption() -> None:
    spec = BY_NAME["coin_selection:attempting_aps_create_tx"]
    name = "w" * 126 + "€"  # the bound is 128 bytes: the 3-byte euro sign is cut after 2
    value, reason = native(build_record(spec, {"wallet_name": name}))
    assert reason is None
    assert value is not None
    assert committed_schemas().decode(value)[1]["wallet_name"] == "w" * 126
    assert native(build_record(spec, {"wallet_name": name})) == reference(
        build_record(spec, {"wallet_name": name})
    )
    broken = build_record(spec, {"wallet_name": b"ok\xff\xfe"})  # not at the bound: corrupt
    assert native(broken) == (None, "field wallet_name: not valid UTF-8")


def test_dead_letter_and_drops_show_up_in_the_next_lost_before() -> None:
    spec = BY_NAME["mempool:added"]
    encoder = fresh_encoder()
    values = {"txid": bytes(32), "vsize": 1, "fee": 2}

    def encode(seq: int, lost_before: int = 0, flags: int = 0) -> dict[str, Any]:
        raw = build_record(spec, values, seq=seq, lost_before=lost_before, flags=flags)
        good, dead = encoder.encode_one(raw)
        if dead:
            return {"dead": dead[0][3]}
        envelope: dict[str, Any] = committed_schemas().decode(good[0][1])[1]["envelope"]
        return envelope

    assert encode(1)["lost_before"] == 0
    assert "dead" in encode(2, flags=1)  # READ_ERROR: dead-lettered, counts as a bridge loss
    third = encode(5, lost_before=2)  # seq 3 and 4 lost in the kernel
    assert third["lost_before"] == 3  # 1 dead letter + 2 kernel losses: seq 2..4
    assert third["lost"] == {"kernel": 2, "bridge": 1, "producer": 0, "node": 0}
    encoder.add_loss(spec.tp_id, LossStage.BRIDGE, 4, True)  # backpressure drop of 6..9
    encoder.add_loss(spec.tp_id, LossStage.PRODUCER, 1, False)  # a failed delivery
    fourth = encode(10)
    assert fourth["lost_before"] == 4
    assert fourth["lost"] == {"kernel": 2, "bridge": 5, "producer": 1, "node": 0}
    captured, last_seq, dead_lettered, pending, *_ = encoder.counters(spec.tp_id)
    assert (captured, last_seq, dead_lettered, pending) == (4, 10, 1, 0)


def test_unknown_tracepoint_is_rejected_without_a_stream() -> None:
    raw = build_record(BY_NAME["mempool:added"], {"txid": bytes(32), "vsize": 1, "fee": 2})
    raw = raw[:24] + (999).to_bytes(2, "little") + raw[26:]
    good, dead = fresh_encoder().encode_one(raw)
    assert not good
    assert dead[0][0] == -1
    assert dead[0][3] == "unknown tracepoint id 999"
