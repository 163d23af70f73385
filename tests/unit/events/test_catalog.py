"""The catalogue against an independent reading of Bitcoin Core's tracepoint table.

``EXPECTED`` below is written from ``shared/reference/bitcoin-tracing.md`` section 1.2
(master ``d84fc352``), argument by argument, without looking at ``catalog.py``'s
helpers, so a wrong type, a missing argument or a swapped order shows up as a mismatch.
"""

from __future__ import annotations

import dataclasses

import pytest

from bridge.events import catalog
from bridge.events.catalog import ALL_EVENTS, BY_NAME, BY_TP_ID, EVENTS, SUBSYSTEMS
from bridge.events.codegen import generated_files
from bridge.events.spec import EnumSpec, EventSpec, FieldSpec, Kind, Stability

# C type as the reference doc writes it -> catalogue kind.
C_TYPES: dict[str, Kind] = {
    "int32": Kind.I32,
    "uint32": Kind.U32,
    "int64": Kind.I64,
    "uint64": Kind.U64,
    "bool": Kind.BOOL,
    "hash": Kind.HASH32,  # const unsigned char* to 32 bytes
    "char*": Kind.CSTR,  # const char*, NUL-terminated
    "bytes": Kind.PAYLOAD,  # const unsigned char* with the length in another argument
}

# Reference doc section 1.2, in the order the doc lists them. Four arguments the doc calls
# uint64 are int64 here because the real bitcoind (d84fc352) shows int64 ("-8@" in its
# probe notes, tests/realnode/test_real_probes.py): closed/evicted time_established and
# block_connected's sigops and duration.
EXPECTED: dict[str, tuple[str, ...]] = {
    # peer id, addr:port, conn type, msg type, payload size, payload
    "net:inbound_message": ("int64", "char*", "char*", "char*", "uint64", "bytes"),
    "net:outbound_message": ("int64", "char*", "char*", "char*", "uint64", "bytes"),
    # peer id, addr:port, conn type, network, number of connections
    "net:inbound_connection": ("int64", "char*", "char*", "uint32", "uint64"),
    "net:outbound_connection": ("int64", "char*", "char*", "uint32", "uint64"),
    # peer id, addr:port, conn type, network, established (epoch s; the real binary shows
    # int64 where the reference doc says uint64)
    "net:evicted_inbound_connection": ("int64", "char*", "char*", "uint32", "int64"),
    # peer id, reason (no score since the discouragement refactor)
    "net:misbehaving_connection": ("int64", "char*"),
    # established: int64 in the real binary, uint64 in the reference doc
    "net:closed_connection": ("int64", "char*", "char*", "uint32", "int64"),
    # hash, height, transactions, inputs, sigops, duration (ns); sigops and duration are
    # int64 in the real binary where the reference doc says uint64
    "validation:block_connected": ("hash", "int32", "uint64", "int32", "int64", "int64"),
    # duration (us), mode, coins, memory, for prune
    "utxocache:flush": ("int64", "uint32", "uint64", "uint64", "bool"),
    # txid, index, height, value, coinbase
    "utxocache:add": ("hash", "uint32", "uint32", "int64", "bool"),
    "utxocache:spent": ("hash", "uint32", "uint32", "int64", "bool"),
    "utxocache:uncache": ("hash", "uint32", "uint32", "int64", "bool"),
    # txid, vsize, fee
    "mempool:added": ("hash", "int32", "int64"),
    # txid, reason, vsize, fee, entry time
    "mempool:removed": ("hash", "char*", "int32", "int64", "uint64"),
    # replaced txid/vsize/fee/entry time, replacement id/vsize/fee, by transaction
    "mempool:replaced": (
        "hash",
        "int32",
        "int64",
        "uint64",
        "hash",
        "int32",
        "int64",
        "bool",
    ),
    # txid, reason
    "mempool:rejected": ("hash", "char*"),
    # wallet, algorithm, target, waste, selected value
    "coin_selection:selected_coins": ("char*", "char*", "int64", "int64", "int64"),
    # wallet, success, fee, change position
    "coin_selection:normal_create_tx_internal": ("char*", "bool", "int64", "int32"),
    # wallet
    "coin_selection:attempting_aps_create_tx": ("char*",),
    # wallet, use aps, success, fee, change position
    "coin_selection:aps_create_tx_internal": ("char*", "bool", "bool", "int64", "int32"),
}

# (tracepoint, 1-based argument) -> unit, where the doc states one.
UNITS: dict[tuple[str, int], str] = {
    ("validation:block_connected", 6): "ns",  # microseconds before v29 (bitcoin#29877)
    ("utxocache:flush", 1): "us",
    ("net:inbound_message", 5): "bytes",
    ("net:outbound_message", 5): "bytes",
    ("utxocache:flush", 4): "bytes",
    ("mempool:added", 2): "vbytes",
    ("mempool:added", 3): "sat",
    ("mempool:removed", 3): "vbytes",
    ("mempool:removed", 4): "sat",
    ("mempool:replaced", 2): "vbytes",
    ("mempool:replaced", 3): "sat",
    ("mempool:replaced", 6): "vbytes",
    ("mempool:replaced", 7): "sat",
    ("utxocache:add", 4): "sat",
    ("coin_selection:selected_coins", 3): "sat",
    ("coin_selection:selected_coins", 4): "sat",
    ("coin_selection:selected_coins", 5): "sat",
}

# (tracepoint, argument) whose value is UNIX epoch seconds.
EPOCH_SECONDS: set[tuple[str, int]] = {
    ("net:evicted_inbound_connection", 5),
    ("net:closed_connection", 5),
    ("mempool:removed", 5),
    ("mempool:replaced", 4),
}

# (tracepoint, argument) -> documented maximum string length.
STRING_BOUNDS: dict[tuple[str, int], int] = {
    ("net:inbound_message", 2): 68,
    ("net:inbound_message", 3): 20,
    ("net:inbound_message", 4): 20,
    ("net:inbound_connection", 2): 68,
    ("net:inbound_connection", 3): 20,
    ("net:misbehaving_connection", 2): 128,
    ("mempool:removed", 2): 9,
    ("mempool:rejected", 2): 118,
}


def arg(name: str, position: int) -> FieldSpec:
    return BY_NAME[name].fields[position - 1]


# ------------------------------------------------------------------ against the doc


def test_the_twenty_tracepoints() -> None:
    assert len(EVENTS) == 20
    assert [spec.name for spec in EVENTS] == list(EXPECTED)
    assert {name for name, spec in BY_NAME.items() if spec.usdt} == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_argument_count_order_and_types(name: str) -> None:
    spec = BY_NAME[name]
    kinds = tuple(field.kind for field in spec.fields)
    assert kinds == tuple(C_TYPES[c] for c in EXPECTED[name])
    assert spec.subsystem == name.split(":")[0]
    assert spec.event == name.split(":")[1]


def test_argument_counts_the_changes_made_famous() -> None:
    assert len(BY_NAME["mempool:replaced"].fields) == 8
    assert len(BY_NAME["net:misbehaving_connection"].fields) == 2
    assert len(BY_NAME["mempool:rejected"].fields) == 2
    assert len(BY_NAME["validation:block_connected"].fields) == 6


@pytest.mark.parametrize(("where", "unit"), list(UNITS.items()), ids=str)
def test_units(where: tuple[str, int], unit: str) -> None:
    assert arg(*where).unit == unit


def test_durations_are_named_by_their_unit() -> None:
    assert arg("validation:block_connected", 6).name == "duration_ns"
    assert arg("utxocache:flush", 1).name == "duration_us"


@pytest.mark.parametrize("where", sorted(EPOCH_SECONDS), ids=str)
def test_epoch_seconds(where: tuple[str, int]) -> None:
    unit = arg(*where).unit
    assert unit is not None
    assert "epoch" in unit.lower()
    assert unit.startswith("s ")


@pytest.mark.parametrize(("where", "bound"), list(STRING_BOUNDS.items()), ids=str)
def test_string_bounds(where: tuple[str, int], bound: int) -> None:
    field = arg(*where)
    assert field.kind is Kind.CSTR
    assert field.max_len == bound
    assert field.bound_provenance


def test_every_string_states_where_its_bound_comes_from() -> None:
    for spec in EVENTS:
        for field in spec.fields:
            if field.kind is Kind.CSTR:
                assert field.max_len is not None, spec.name
                assert field.max_len > 0, spec.name
                assert field.bound_provenance, f"{spec.name}.{field.name}"


def test_message_payload_length_is_argument_five() -> None:
    for name in ("net:inbound_message", "net:outbound_message"):
        spec = BY_NAME[name]
        payload = spec.payload_field
        assert payload is not None
        assert payload is spec.fields[5]
        assert payload.length_of == spec.fields[4].name
        assert payload.max_len == 4_000_000  # MAX_PROTOCOL_MESSAGE_LENGTH


def test_only_message_events_have_payloads() -> None:
    with_payload = {spec.name for spec in EVENTS if spec.payload_field is not None}
    assert with_payload == {"net:inbound_message", "net:outbound_message"}


# ------------------------------------------------------------------ enums


def enum_of(name: str, position: int) -> EnumSpec:
    field = arg(name, position)
    assert field.enum is not None
    return field.enum


def test_flush_modes() -> None:
    mode = enum_of("utxocache:flush", 2)
    assert dict(mode.values) == {
        0: "NONE",
        1: "IF_NEEDED",
        2: "PERIODIC",
        3: "FORCE_FLUSH",
        4: "FORCE_SYNC",
    }
    assert mode.symbols == (
        "UNKNOWN",
        "NONE",
        "IF_NEEDED",
        "PERIODIC",
        "FORCE_FLUSH",
        "FORCE_SYNC",
    )
    assert mode.symbols[mode.index_of(3)] == "FORCE_FLUSH"
    assert mode.symbols[mode.index_of(0)] == "NONE"
    assert mode.index_of(5) == 0
    assert mode.index_of("3") == 0  # a string is not the integer 3


def test_networks() -> None:
    network = enum_of("net:inbound_connection", 4)
    assert dict(network.values) == {
        0: "UNROUTABLE",
        1: "IPV4",
        2: "IPV6",
        3: "ONION",
        4: "I2P",
        5: "CJDNS",
        6: "INTERNAL",
    }


def test_connection_types() -> None:
    conn = enum_of("net:inbound_message", 3)
    raw = [value for value, _ in conn.values]
    assert raw == [
        "inbound",
        "manual",
        "feeler",
        "outbound-full-relay",
        "block-relay-only",
        "addr-fetch",
        "private-broadcast",
    ]
    assert conn.symbols[conn.index_of("outbound-full-relay")] == "OUTBOUND_FULL_RELAY"
    assert conn.index_of("OUTBOUND-FULL-RELAY") == 0


def test_removal_reasons_and_algorithms() -> None:
    reasons = enum_of("mempool:removed", 2)
    assert [v for v, _ in reasons.values] == [
        "expiry",
        "sizelimit",
        "reorg",
        "block",
        "conflict",
        "replaced",
    ]
    algorithms = enum_of("coin_selection:selected_coins", 2)
    assert [v for v, _ in algorithms.values] == ["bnb", "knapsack", "srd", "cg", "manual"]


def all_enums() -> list[tuple[str, FieldSpec]]:
    return [
        (f"{spec.name}.{field.name}", field)
        for spec in EVENTS
        for field in spec.fields
        if field.enum is not None
    ]


def test_enum_fields_are_where_the_doc_has_enums() -> None:
    assert {where for where, _ in all_enums()} == {
        f"{name}.conn_type"
        for name in (
            "net:inbound_message",
            "net:outbound_message",
            "net:inbound_connection",
            "net:outbound_connection",
            "net:evicted_inbound_connection",
            "net:closed_connection",
        )
    } | {
        f"{name}.network"
        for name in (
            "net:inbound_connection",
            "net:outbound_connection",
            "net:evicted_inbound_connection",
            "net:closed_connection",
        )
    } | {
        "utxocache:flush.mode",
        "mempool:removed.reason",
        "coin_selection:selected_coins.algorithm",
    }


@pytest.mark.parametrize(("where", "field"), all_enums(), ids=[w for w, _ in all_enums()])
def test_enum_has_unknown_first_and_unique_symbols(where: str, field: FieldSpec) -> None:
    assert field.enum is not None
    symbols = field.enum.symbols
    assert symbols[0] == "UNKNOWN"
    assert "UNKNOWN" not in symbols[1:]
    assert len(set(symbols)) == len(symbols)
    raws = [value for value, _ in field.enum.values]
    assert len(set(raws)) == len(raws)
    if field.kind is Kind.CSTR:
        assert field.max_len is not None
        assert all(isinstance(v, str) for v in raws)
        # A known value longer than the bound would be cut and then read as UNKNOWN.
        longest = max(len(str(v).encode()) for v in raws)
        assert longest <= field.max_len, where
    else:
        assert all(isinstance(v, int) for v in raws)


def test_enum_default_in_generated_schemas_is_unknown() -> None:
    import json

    seen = 0
    for generated in generated_files():
        if generated.path.suffix != ".avsc":
            continue
        schema = json.loads(generated.content)
        for field in schema["fields"]:
            if isinstance(field["type"], dict) and field["type"].get("type") == "enum":
                assert field["type"]["symbols"][0] == "UNKNOWN"
                assert field["type"]["default"] == "UNKNOWN"
                seen += 1
    assert seen >= 13  # every event with an enum field defines its enum inline


# ------------------------------------------------------------------ identity


def test_tp_ids_are_unique_positive_and_fit_the_header() -> None:
    ids = [spec.tp_id for spec in ALL_EVENTS]
    assert len(set(ids)) == len(ids)
    assert all(1 <= tp_id < 256 for tp_id in ids)  # native encoder and sink: 256 streams
    assert {spec.tp_id: spec for spec in ALL_EVENTS} == BY_TP_ID


def test_tp_ids_are_pinned() -> None:
    """tp_id is written into every ring record and dead letter: it must never move."""
    assert {spec.name: spec.tp_id for spec in EVENTS} == {
        name: position for position, name in enumerate(EXPECTED, start=1)
    }


def test_names_identifiers_and_record_names() -> None:
    spec = BY_NAME["net:inbound_message"]
    assert spec.ident == "net_inbound_message"
    assert spec.record_name == "InboundMessage"
    assert BY_NAME["coin_selection:aps_create_tx_internal"].record_name == "ApsCreateTxInternal"
    records = [(s.subsystem, s.record_name) for s in EVENTS]
    assert len(set(records)) == len(records)
    assert set(SUBSYSTEMS) == {s.subsystem for s in EVENTS}


def test_stability_tags() -> None:
    stable = {spec.name for spec in EVENTS if spec.stability is Stability.STABLE}
    assert stable == {"validation:block_connected", "mempool:added", "mempool:removed"}
    internal = {spec.name for spec in EVENTS if spec.stability is Stability.INTERNAL}
    assert internal == {name for name in EXPECTED if name.startswith("coin_selection:")}


def test_field_named() -> None:
    spec = BY_NAME["mempool:added"]
    assert spec.field_named("fee").kind is Kind.I64
    with pytest.raises(KeyError, match="mempool:added has no field 'nope'"):
        spec.field_named("nope")


def test_field_names_are_unique_per_event() -> None:
    for spec in EVENTS:
        names = [f.name for f in spec.fields]
        assert len(set(names)) == len(names), spec.name


# ------------------------------------------------------------------ constructor checks


def test_cstr_needs_max_len() -> None:
    with pytest.raises(ValueError, match="C string field 's' needs max_len"):
        FieldSpec("s", Kind.CSTR, "doc")
    assert FieldSpec("s", Kind.CSTR, "doc", max_len=1).max_len == 1


def test_payload_needs_length_of() -> None:
    with pytest.raises(ValueError, match="payload field 'p' needs length_of"):
        FieldSpec("p", Kind.PAYLOAD, "doc", max_len=10)


@pytest.mark.parametrize("kind", [Kind.I64, Kind.U64, Kind.BOOL, Kind.HASH32])
def test_enum_only_on_integers_and_strings(kind: Kind) -> None:
    enum = EnumSpec("E", "doc", ((1, "ONE"),))
    with pytest.raises(ValueError, match="enum field 'e' must be an integer or a C string"):
        FieldSpec("e", kind, "doc", enum=enum)


@pytest.mark.parametrize("kind", [Kind.I32, Kind.U32])
def test_enum_on_integers_is_allowed(kind: Kind) -> None:
    enum = EnumSpec("E", "doc", ((1, "ONE"),))
    assert FieldSpec("e", kind, "doc", enum=enum).enum is enum


# ------------------------------------------------------------------ _check_catalogue


def event(tp_id: int, name: str = "x", subsystem: str = "mempool", *fields: FieldSpec) -> EventSpec:
    return EventSpec(
        tp_id=tp_id,
        subsystem=subsystem,
        event=name,
        stability=Stability.EXPERIMENTAL,
        doc="test",
        fields=fields or (FieldSpec("v", Kind.U32, "v"),),
    )


def check(monkeypatch: pytest.MonkeyPatch, events: tuple[EventSpec, ...]) -> None:
    monkeypatch.setattr(catalog, "EVENTS", events)
    monkeypatch.setattr(catalog, "IPC_EVENTS", ())
    monkeypatch.setattr(catalog, "ALL_EVENTS", events)
    monkeypatch.setattr(catalog, "BY_NAME", {spec.name: spec for spec in events})
    monkeypatch.setattr(catalog, "BY_TP_ID", {spec.tp_id: spec for spec in events})
    catalog._check_catalogue()


def length(name: str = "size") -> FieldSpec:
    return FieldSpec(name, Kind.U64, "len")


def payload(name: str = "data", length_of: str = "size") -> FieldSpec:
    return FieldSpec(name, Kind.PAYLOAD, "p", max_len=100, length_of=length_of)


def test_check_accepts_the_real_catalogue_and_a_minimal_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog._check_catalogue()
    check(monkeypatch, (event(1, "a"), event(2, "b")))
    twelve = tuple(FieldSpec(f"f{i}", Kind.U32, "f") for i in range(12))
    check(monkeypatch, (event(1, "a", "mempool", *twelve),))
    check(monkeypatch, (event(1, "a", "net", length(), payload()),))


def test_check_rejects_duplicate_tp_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"unique and in 1\.\.255"):
        check(monkeypatch, (event(1, "a"), event(1, "b")))


@pytest.mark.parametrize("tp_id", [0, -1])
def test_check_rejects_non_positive_tp_ids(monkeypatch: pytest.MonkeyPatch, tp_id: int) -> None:
    with pytest.raises(ValueError, match=r"unique and in 1\.\.255"):
        check(monkeypatch, (event(tp_id, "a"), event(2, "b")))


def test_check_rejects_duplicate_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="event names must be unique"):
        check(monkeypatch, (event(1, "a"), event(2, "a")))


def test_check_rejects_unknown_subsystem(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="wallet:a: unknown subsystem"):
        check(monkeypatch, (event(1, "a", "wallet"),))


def test_check_rejects_thirteen_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    thirteen = tuple(FieldSpec(f"f{i}", Kind.U32, "f") for i in range(13))
    with pytest.raises(ValueError, match="at most 12 arguments"):
        check(monkeypatch, (event(1, "a", "mempool", *thirteen),))


def test_check_rejects_two_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = (length(), payload("one"), payload("two"))
    with pytest.raises(ValueError, match="at most one payload field"):
        check(monkeypatch, (event(1, "a", "net", *fields),))


@pytest.mark.parametrize("kind", [Kind.U32, Kind.I64, Kind.I32])
def test_check_rejects_payload_length_that_is_not_u64(
    monkeypatch: pytest.MonkeyPatch, kind: Kind
) -> None:
    fields = (FieldSpec("size", kind, "len"), payload())
    with pytest.raises(ValueError, match="payload length must be a u64 argument"):
        check(monkeypatch, (event(1, "a", "net", *fields),))


def test_check_rejects_payload_length_naming_no_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(KeyError, match="has no field 'size'"):
        check(monkeypatch, (event(1, "a", "net", payload()),))


def test_check_rejects_payload_before_its_length(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        check(monkeypatch, (event(1, "a", "net", payload(), length()),))


def test_frozen_specs() -> None:
    spec = BY_NAME["mempool:added"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tp_id = 5  # type: ignore[misc]
