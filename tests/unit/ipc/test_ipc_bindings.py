"""The catalogue's IPC bindings against the loaded Cap'n Proto schemas.

Every ``IpcBinding`` names Cap'n Proto fields by (dotted) name; the bridge reads them
with ``getattr`` or through slot offsets at run time, so a binding that names a field
the schema lacks, or one of an incompatible type, would fail only when the node first
calls. Here every binding is walked through the "proposed" set (and the tip's through
every set it is used with), and each leaf's Cap'n Proto type is checked against the
catalogue field's kind, with a compatibility table of this test's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

pytest.importorskip("capnp")

from bridge.codec.capnp_table import CapnpMappingError, list_table
from bridge.events.catalog import ALL_EVENTS, BY_NAME, PEER
from bridge.events.spec import EventSpec, IpcBinding, Kind
from bridge.sources.ipc import callbacks, polling
from bridge.sources.ipc.emitter import Emitter
from bridge.sources.ipc.schemas import SchemaSet, Version, load_schema_set

pytestmark = pytest.mark.ipc

PROPOSED = load_schema_set("proposed")

# Which Cap'n Proto slot types may feed a catalogue kind without loss.
COMPATIBLE: dict[Kind, frozenset[str]] = {
    Kind.BOOL: frozenset({"bool"}),
    Kind.I32: frozenset({"int8", "int16", "int32", "uint8", "uint16"}),
    Kind.U32: frozenset({"uint8", "uint16", "uint32"}),
    Kind.I64: frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"}),
    Kind.U64: frozenset({"uint8", "uint16", "uint32", "uint64"}),
    Kind.F64: frozenset({"float32", "float64"}),
    Kind.HASH32: frozenset({"data"}),
    Kind.DATA: frozenset({"data"}),
    Kind.PAYLOAD: frozenset({"data"}),
    Kind.TEXT: frozenset({"text"}),
    Kind.CSTR: frozenset({"text"}),
}


def callback_specs(kind: str) -> list[EventSpec]:
    """Pushed IPC events bound to ChainNotifications ("chain") or a Node callback."""
    out = []
    for spec in ALL_EVENTS:
        ipc = spec.ipc
        if ipc is None or ipc.polled:
            continue
        if (kind == "chain" and ipc.interface == "ChainNotifications") or (
            kind == "node" and ipc.interface.endswith("Callback")
        ):
            out.append(spec)
    return out


def walk(struct: Any, path: str) -> tuple[str, Any]:
    """(slot type name, the field) at a dotted ``path`` from a struct schema."""
    parts = path.split(".")
    for depth, part in enumerate(parts):
        assert part in struct.fieldnames, f"{path}: no field {part!r} in {struct}"
        field = struct.fields[part]
        assert field.proto.which() == "slot", f"{path}: {part} is not a plain field"
        type_name = str(field.proto.slot.type.which())
        if depth < len(parts) - 1:
            assert type_name == "struct", f"{path}: {part} is a {type_name}, not a struct"
            struct = field.schema
    return type_name, field


def check_leaf(spec: EventSpec, ours: str, theirs: str, struct: Any) -> None:
    kind = spec.field_named(ours).kind
    type_name, _ = walk(struct, theirs)
    assert type_name in COMPATIBLE[kind], (
        f"{spec.name}.{ours} is {kind.value}, but Cap'n Proto {theirs} is {type_name}"
    )


def check_covers(spec: EventSpec) -> None:
    """Every catalogue field is bound or derived, once."""
    assert spec.ipc is not None
    named = [ours for ours, _ in spec.ipc.fields] + list(spec.ipc.derived)
    assert sorted(named) == sorted(f.name for f in spec.fields), spec.name


def method_params(interface: Any, method: str) -> Any:
    assert method in interface.schema.method_names, f"{interface} has no method {method}"
    return interface.schema.methods[method].param_type


# ------------------------------------------------------------------------------------
# Lists the native encoder reads by slot offset: NetMessage and UtxoInfo.
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["net:inbound_message", "net:outbound_message"])
def test_net_message_binding_fits_the_net_message_struct(name: str) -> None:
    spec = BY_NAME[name]
    assert spec.ipc is not None
    check_covers(spec)
    struct = PROPOSED.require("tracing_net").NetMessage.schema
    table = list_table(spec, struct, "inbound", "timestampUs")
    assert len(table.sources) == len(spec.fields)
    assert table.selector_bit >= 0
    assert table.timestamp_word >= 0
    for ours, theirs in spec.ipc.fields:
        check_leaf(spec, ours, theirs, struct)
    # The callback carries the list and the node's drop count.
    params = method_params(PROPOSED.require("tracing_net").NetMessageTrace, spec.ipc.method)
    assert {"messages", "dropped"} <= set(params.fieldnames)
    assert walk(params, "messages")[0] == "list"
    assert walk(params, "dropped")[0] in COMPATIBLE[Kind.U64]


def test_list_table_refuses_a_binding_of_the_wrong_type() -> None:
    """The startup check has teeth: a u64 read from a Text, an unknown field."""
    spec = BY_NAME["net:inbound_message"]
    assert spec.ipc is not None
    struct = PROPOSED.require("tracing_net").NetMessage.schema
    swapped = tuple(
        (ours, "peerAddr" if ours == "msg_size" else theirs) for ours, theirs in spec.ipc.fields
    )
    for fields in (swapped, (*spec.ipc.fields[:-1], ("msg", "noSuchField"))):
        broken = dataclasses.replace(spec, ipc=dataclasses.replace(spec.ipc, fields=fields))
        with pytest.raises(CapnpMappingError):
            list_table(broken, struct, "inbound", "timestampUs")
    with pytest.raises(CapnpMappingError):
        list_table(spec, struct, "msgType", "timestampUs")  # a Text is no selector


UTXO_METHODS = {"add": "utxocache:add", "spend": "utxocache:spent", "uncache": "utxocache:uncache"}


def test_the_utxo_server_serves_exactly_the_utxocache_bindings() -> None:
    served = {spec.ipc.method: spec.name for spec in callbacks.UTXO_SPECS if spec.ipc}
    assert served == UTXO_METHODS


@pytest.mark.parametrize(("method", "name"), sorted(UTXO_METHODS.items()))
def test_utxo_binding_fits_utxo_info(method: str, name: str) -> None:
    spec = BY_NAME[name]
    assert spec.ipc is not None
    assert spec.ipc.method == method
    check_covers(spec)
    # The callback reads UtxoInfo in the record's field order.
    assert spec.ipc.fields_in_order(spec.fields) == [
        "outpointHash",
        "outpointN",
        "height",
        "value",
        "isCoinbase",
    ]
    params = method_params(PROPOSED.require("tracing_utxo").UtxoCacheTrace, method)
    assert walk(params, "utxoInfo")[0] == "struct"
    info = params.fields["utxoInfo"].schema
    assert len(list_table(spec, info, None, None).sources) == len(spec.fields)
    for ours, theirs in spec.ipc.fields:
        check_leaf(spec, ours, theirs, info)


# ------------------------------------------------------------------------------------
# Callbacks read through pycapnp by dotted path.
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", callback_specs("chain"), ids=lambda s: s.name)
def test_chain_notification_bindings_fit_the_method_params(spec: EventSpec) -> None:
    assert spec.ipc is not None
    check_covers(spec)
    params = method_params(PROPOSED.require("chain").ChainNotifications, spec.ipc.method)
    assert params.fieldnames[0] == "context"
    for ours, theirs in spec.ipc.fields:
        check_leaf(spec, ours, theirs, params)
    _check_every_param_is_read(spec.ipc, params)
    if "txid" in spec.ipc.derived:
        assert ("tx", "tx") in spec.ipc.fields, "txid/wtxid/vsize come from the raw tx"


@pytest.mark.parametrize("spec", callback_specs("node"), ids=lambda s: s.name)
def test_node_callback_bindings_fit_the_callback_params(spec: EventSpec) -> None:
    assert spec.ipc is not None
    check_covers(spec)
    node = PROPOSED.require("node")
    interface = getattr(node, spec.ipc.interface)
    params = method_params(interface, spec.ipc.method)
    for ours, theirs in spec.ipc.fields:
        check_leaf(spec, ours, theirs, params)
    _check_every_param_is_read(spec.ipc, params)
    # Node.handle<Name> takes exactly this callback interface (callbacks.py derives the
    # name from the interface's).
    handle = "handle" + spec.ipc.interface.removesuffix("Callback")
    handle_params = method_params(node.Node, handle)
    type_name, field = walk(handle_params, "callback")
    assert type_name == "interface"
    assert field.proto.slot.type.interface.typeId == interface.schema.node.id


def test_notification_servers_subscribe_through_existing_node_methods() -> None:
    """The servers the session hands to Node.handle*: one per callback event, each
    keyed by a handle method the Node interface has."""
    servers = callbacks.notification_servers(PROPOSED, cast(Emitter, None))
    node = PROPOSED.require("node")
    assert len(servers) == len(callback_specs("node"))
    for handle, server in servers.items():
        assert handle in node.Node.schema.method_names
        assert hasattr(server, "call_context")


def _check_every_param_is_read(binding: IpcBinding, params: Any) -> None:
    """Nothing the node passes is dropped on the floor (but the Context)."""
    read = {theirs.split(".")[0] for _, theirs in binding.fields}
    assert set(params.fieldnames) - {"context"} == read


def test_unread_nested_fields_are_the_known_ones() -> None:
    """BlockInfo.undoData is the one nested field no catalogue event carries."""
    block_info = PROPOSED.require("chain").BlockInfo.schema
    read = {
        theirs.split(".", 1)[1]
        for spec in callback_specs("chain")
        if spec.ipc is not None
        for _, theirs in spec.ipc.fields
        if theirs.startswith("block.")
    }
    assert set(block_info.fieldnames) - read == {"undoData"}


# ------------------------------------------------------------------------------------
# Polled snapshots and the tip.
# ------------------------------------------------------------------------------------


def test_peer_fields_fit_node_stats() -> None:
    stats = PROPOSED.require("node").NodeStats.schema
    ours = [name for name, _ in polling.PEER_FIELDS]
    assert sorted(ours) == sorted(f.name for f in PEER.fields), "every PeerStats field, once"
    by_name = {f.name: f for f in PEER.fields}
    for name, theirs in polling.PEER_FIELDS:
        type_name, _ = walk(stats, theirs)
        kind = by_name[name].kind
        assert type_name in COMPATIBLE[kind], f"PeerStats.{name} {kind.value} <- {type_name}"


@pytest.mark.parametrize(
    "spec", [s for s in ALL_EVENTS if s.ipc is not None and s.ipc.polled], ids=lambda s: s.name
)
def test_polled_bindings_name_existing_methods_and_results(spec: EventSpec) -> None:
    assert spec.ipc is not None
    check_covers(spec)
    modules = {"Node": PROPOSED.require("node").Node, "Chain": PROPOSED.require("chain").Chain}
    assert spec.ipc.method in modules[spec.ipc.interface].schema.method_names
    for _, theirs in spec.ipc.fields:
        parts = theirs.split(".")
        interface = modules[spec.ipc.interface]
        if parts[0] in modules:
            interface = modules[parts.pop(0)]
        method, result = parts
        assert method in interface.schema.method_names, theirs
        assert result in interface.schema.methods[method].result_type.fieldnames, theirs
    assert set(polling.SNAPSHOTS) >= {spec.name}


@pytest.mark.parametrize("version", ["v30", "v31", "master", "proposed"])
def test_tip_binding_fits_every_mining_interface(version: Version) -> None:
    spec = BY_NAME["mining:tip_changed"]
    assert spec.ipc is not None
    check_covers(spec)
    schemas: SchemaSet = load_schema_set(version)
    mining = schemas.mining.Mining
    results = mining.schema.methods[spec.ipc.method].result_type
    for ours, theirs in spec.ipc.fields:
        check_leaf(spec, ours, theirs, results)
    # getTip answers the same BlockRef (tip.py reads it the same way).
    tip = mining.schema.methods["getTip"].result_type
    for ours, theirs in spec.ipc.fields:
        check_leaf(spec, ours, theirs, tip)
    assert {"hasResult", "result"} <= set(tip.fieldnames)
    assert walk(mining.schema.methods["isInitialBlockDownload"].result_type, "result")[0] == "bool"


def test_reading_a_struct_in_field_order_needs_every_field_bound() -> None:
    spec = BY_NAME["utxocache:add"]
    assert spec.ipc is not None
    partial = dataclasses.replace(spec.ipc, fields=spec.ipc.fields[:-1])
    with pytest.raises(ValueError, match="is_coinbase"):
        partial.fields_in_order(spec.fields)
