"""The native encoder's IPC paths against fastavro: Python values, bodies, capnp lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import capnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codec.body import BodyEncoder
from bridge.codec.capnp_table import list_table
from bridge.codec.native import Encoder, configure, field_rows
from bridge.codec.single_object import committed_schemas
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.avro_values import as_long
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.envelope import SourceKind
from bridge.events.layout import compute_layout

pytestmark = pytest.mark.ipc

NODE, SESSION, OFFSET = "ipc-node", "7c0ffee0-0000-4000-8000-000000000001", 1_700_000_000 * 10**9
NETMSG = Path(__file__).with_name("netmessage_test.capnp")
SEQ_NET = 100  # both directions share one sequence, as over IPC
LIST_ID = 1
INBOUND, OUTBOUND = BY_NAME["net:inbound_message"], BY_NAME["net:outbound_message"]


def envelope(stream: str, seq: int, mono: int, lost_before: int, node: int) -> dict[str, Any]:
    return {
        "node_id": NODE,
        "source": "IPC",
        "session_id": SESSION,
        "stream": stream,
        "seq": seq,
        "ts_mono_ns": as_long(mono),
        "ts_wall_ns": as_long(mono + OFFSET),
        "lost_before": lost_before,
        "lost": {"kernel": 0, "bridge": 0, "producer": 0, "node": node},
    }


def encoder() -> Encoder:
    enc = Encoder()
    configure(enc, EVENTS, committed_schemas())
    enc.set_session(NODE, SourceKind.IPC, SESSION, OFFSET)
    return enc


def expected(spec_name: str, env: dict[str, Any], fields: dict[str, Any]) -> bytes:
    name = full_name(event_schema(BY_NAME[spec_name]))
    return committed_schemas().encode(name, {"envelope": env, **fields})


# ------------------------------------------------------------------ Python values


def test_values_of_an_ipc_utxo_event_encode_like_fastavro() -> None:
    enc = encoder()
    spec = BY_NAME["utxocache:spent"]
    values = (b"\x11" * 32, 3, 700_000, 5_000_000_000, True)
    good, dead = enc.encode_values(spec.tp_id, 123, 0, values)
    assert not dead
    fields = {
        "txid": b"\x11" * 32,
        "txid_hex": "11" * 32,
        "index": 3,
        "height": 700_000,
        "value": 5_000_000_000,
        "is_coinbase": True,
    }
    want = expected(spec.name, envelope(spec.name, 1, 123, 0, 0), fields)
    assert good[0][1] == want
    second, _ = enc.encode_values(spec.tp_id, 124, 0, values)
    assert committed_schemas().decode(second[0][1])[1]["envelope"]["seq"] == 2


def test_a_wrongly_typed_value_is_a_counted_dead_letter() -> None:
    enc = encoder()
    spec = BY_NAME["utxocache:add"]
    good, dead = enc.encode_values(spec.tp_id, 1, 0, (b"short", 0, 0, 0, False))
    assert not good
    assert dead[0][3] == "field txid: 5 bytes, a hash has 32"
    good, _ = enc.encode_values(spec.tp_id, 2, 0, (b"\0" * 32, 0, 0, 0, False))
    env = committed_schemas().decode(good[0][1])[1]["envelope"]
    assert (env["seq"], env["lost_before"], env["lost"]["bridge"]) == (2, 1, 1)


def test_nothing_is_encoded_before_the_session_is_set() -> None:
    """A record without node and session in its envelope would be undecodable, and
    set_session() would then reset the counters under it."""
    enc = Encoder()
    configure(enc, EVENTS, committed_schemas())
    spec = BY_NAME["utxocache:add"]
    with pytest.raises(RuntimeError, match="set_session"):
        enc.encode_values(spec.tp_id, 1, 0, (b"\0" * 32, 0, 0, 0, False))
    with pytest.raises(RuntimeError, match="set_session"):
        enc.reject_next(spec.tp_id, 0)
    enc.set_session(NODE, SourceKind.IPC, SESSION, OFFSET)
    good, _ = enc.encode_values(spec.tp_id, 1, 0, (b"\0" * 32, 0, 0, 0, False))
    assert committed_schemas().decode(good[0][1])[1]["envelope"]["seq"] == 1


# ------------------------------------------------------------------ bodies


def test_an_ipc_only_event_is_envelope_plus_fastavro_body() -> None:
    spec = BY_NAME["node:block_tip"]
    enc = Encoder()
    store = committed_schemas()
    name = full_name(event_schema(spec))
    enc.configure_sequence(spec.tp_id, spec.name)
    enc.configure_stream(spec.tp_id, store.by_name(name).header, spec.tp_id, 0, [])
    enc.set_session(NODE, SourceKind.IPC, SESSION, OFFSET)
    fields = {
        "sync_state": "POST_INIT",
        "sync_state_raw": None,
        "height": 840_000,
        "block_time": 1_713_571_767,
        "block_hash": bytes(range(32)),
        "block_hash_hex": bytes(reversed(range(32))).hex(),
        "verification_progress": 0.999,
    }
    body = BodyEncoder(store).encode(name, fields)
    _, value, ts_ms = enc.encode_body(spec.tp_id, 5_000, 2, body)
    assert value == expected(spec.name, envelope(spec.name, 3, 5_000, 2, 2), fields)
    assert ts_ms == (5_000 + OFFSET) // 1_000_000


# ------------------------------------------------------------------ Cap'n Proto lists


@pytest.fixture(scope="module")
def schema() -> Any:
    return capnp.load(str(NETMSG))


def net_encoder(schema: Any) -> Encoder:
    enc = Encoder()
    store = committed_schemas()
    enc.configure_sequence(SEQ_NET, "net:messages")
    for spec in (INBOUND, OUTBOUND):
        layout = compute_layout(spec)
        header = store.by_name(full_name(event_schema(spec))).header
        enc.configure_stream(spec.tp_id, header, SEQ_NET, 0, field_rows(layout))
    table = list_table(INBOUND, schema.NetMessage.schema, "inbound", "timestampUs")
    enc.configure_capnp_list(
        LIST_ID,
        0,
        table.selector_bit,
        INBOUND.tp_id,
        OUTBOUND.tp_id,
        table.timestamp_word,
        1000,
        table.sources,
    )
    enc.set_session(NODE, SourceKind.IPC, SESSION, OFFSET)
    return enc


message_values = st.fixed_dictionaries(
    {
        "inbound": st.booleans(),
        "peerId": st.integers(-(2**63), 2**63 - 1),
        "peerAddr": st.text(max_size=80),
        "connType": st.sampled_from(["inbound", "feeler", "weird-new-type", ""]),
        "msgType": st.text(max_size=24),
        "payload": st.binary(max_size=64),
        "extra": st.integers(0, 2),
        "timestampUs": st.integers(0, 2**50),
    }
)


def build(schema: Any, messages: list[dict[str, Any]]) -> bytes:
    batch = schema.Batch.new_message()
    items = batch.init("messages", len(messages))
    for item, m in zip(items, messages, strict=True):
        for key, value in m.items():
            if key != "extra":
                setattr(item, key, value)
        item.msgSize = len(m["payload"]) + m["extra"]
    data: bytes = batch.to_bytes()
    return data


def reference(messages: list[dict[str, Any]], dropped: int) -> list[bytes]:
    out = []
    for seq, m in enumerate(messages, start=dropped + 1):
        spec = INBOUND if m["inbound"] else OUTBOUND
        conn = spec.field_named("conn_type").enum
        assert conn is not None
        index = conn.index_of(m["connType"])
        fields = {
            "peer_id": m["peerId"],
            "peer_addr": m["peerAddr"],
            "conn_type": conn.symbols[index],
            "conn_type_raw": None if index else m["connType"],
            "msg_type": m["msgType"],
            "msg_size": len(m["payload"]) + m["extra"],
            "msg": m["payload"],
            "msg_truncated": m["extra"] > 0,
        }
        lost_before = dropped if seq == dropped + 1 else 0
        env = envelope("net:messages", seq, m["timestampUs"] * 1000, lost_before, dropped)
        out.append(expected(spec.name, env, fields))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(message_values, max_size=40), st.integers(0, 5))
def test_capnp_batches_encode_like_fastavro(
    schema: Any, messages: list[dict[str, Any]], dropped: int
) -> None:
    enc = net_encoder(schema)
    good, dead = enc.encode_capnp_list(LIST_ID, build(schema, messages), dropped, 0, len(messages))
    assert not dead
    assert [value for _, value, _ in good] == reference(messages, dropped)
    captured, last_seq, *_, node = enc.counters(SEQ_NET)
    assert (captured, last_seq, node) == (len(messages), len(messages) + dropped, dropped)


def test_a_large_batch_spanning_segments_and_far_pointers(schema: Any) -> None:
    messages = [
        {
            "inbound": i % 2 == 0,
            "peerId": i,
            "peerAddr": "10.0.0.1:8333",
            "connType": "inbound",
            "msgType": "ping",
            "payload": i.to_bytes(8, "little"),
            "extra": 0,
            "timestampUs": i,
        }
        for i in range(5000)
    ]
    data = build(schema, messages)
    assert int.from_bytes(data[:4], "little") + 1 > 1, "expected a multi-segment message"
    good, dead = net_encoder(schema).encode_capnp_list(LIST_ID, data, 0, 0, len(messages))
    assert not dead
    assert [v for _, v, _ in good] == reference(messages, 0)


def test_a_rejected_message_keeps_its_bytes_as_a_message_of_its_own(schema: Any) -> None:
    """The dead letter's raw bytes are the NetMessage alone, its Text and Data included,
    readable with the schema: not offsets into a batch the consumer never sees."""
    messages = [
        {
            "inbound": True,
            "peerId": 7,
            "peerAddr": "10.0.0.7:8333",
            "connType": "inbound",
            "msgType": name,
            "payload": b"\x01\x02\x03",
            "extra": 5,
            "timestampUs": 42,
        }
        for name in ("ping", "qong", "pong")
    ]
    batch = build(schema, messages).replace(b"qong\0", b"q\xffng\0")
    good, dead = net_encoder(schema).encode_capnp_list(LIST_ID, batch, 0, 0, len(messages))
    assert len(good) == 2
    [(tp_id, seq, raw, reason)] = dead
    assert (tp_id, seq) == (INBOUND.tp_id, 2)
    assert "msg_type" in reason
    with schema.NetMessage.from_bytes(raw) as alone:
        assert (alone.peerId, alone.peerAddr, alone.connType) == (7, "10.0.0.7:8333", "inbound")
        assert (alone.payload, alone.msgSize, alone.timestampUs) == (b"\x01\x02\x03", 8, 42)
    assert b"q\xffng\0" in raw
    assert len(raw) < len(batch)


@settings(max_examples=400, deadline=None)
@given(st.lists(message_values, min_size=1, max_size=8), st.data())
def test_corrupted_messages_never_crash_and_are_counted(
    schema: Any, messages: list[dict[str, Any]], data: st.DataObject
) -> None:
    blob = bytearray(build(schema, messages))
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([None, 4, 12, len(blob) // 2]))
    payload = bytes(blob if cut is None else blob[:cut])
    enc = net_encoder(schema)
    good, dead = enc.encode_capnp_list(LIST_ID, payload, 0, 0, len(messages))
    for _, value, _ in good:
        committed_schemas().decode(value)  # every accepted record is valid Avro
    captured, last_seq, dead_lettered, _, _, bridge, *_ = enc.counters(SEQ_NET)
    # However badly the bytes are damaged, every event of the batch is accounted for.
    assert captured == last_seq == len(messages)
    assert dead_lettered == bridge == len(messages) - len(good)
    assert len(dead) in (dead_lettered, 1)
    if len(messages) > 1 and len(dead) == dead_lettered:  # rejected one by one
        for *_, raw, _ in dead:
            with schema.NetMessage.from_bytes(raw) as alone:  # a well-formed message
                alone.peerId  # noqa: B018 (reading is the test)
