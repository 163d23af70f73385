"""The capabilities the node calls: one server per callback interface.

Server classes are built per schema set (pycapnp refuses a capability whose class comes
from another parser) and read each event's fields through its catalogue binding
(``EventSpec.ipc``: dotted Cap'n Proto paths), so no field list is written here twice.
Each method encodes the event on the spot (:class:`~bridge.sources.ipc.emitter.Emitter`)
and returns; it waits only when the bridge thread is behind (backpressure).

Which variant of a pycapnp server method is used: ``<method>_context(self, call)``,
which reads parameters lazily, so a malformed Text does not fail the call before our
code can count it (pycapnp would otherwise decode every top-level parameter first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bridge.events.catalog import BY_NAME
from bridge.events.spec import EventSpec
from bridge.sources.ipc.emitter import Emitter
from bridge.sources.ipc.schemas import SchemaSet
from bridge.sources.ipc.transaction import TransactionError, summarize

log = logging.getLogger(__name__)

NET_BATCH_SCHEMA = Path(__file__).with_name("net_batch.capnp")
# The record types UtxoCacheTrace's methods carry, as the catalogue binds them.
UTXO_SPECS: tuple[EventSpec, ...] = tuple(
    spec
    for spec in BY_NAME.values()
    if spec.ipc is not None and spec.ipc.interface == "UtxoCacheTrace"
)

Method = Callable[[Any, Any], Coroutine[Any, Any, None]]


def read_binding(spec: EventSpec, params: Any) -> dict[str, Any]:
    """The catalogue values of ``spec`` read from a call's parameters."""
    assert spec.ipc is not None
    values: dict[str, Any] = {}
    for ours, theirs in spec.ipc.fields:
        value = params
        for part in theirs.split("."):
            value = getattr(value, part)
        values[ours] = bytes(value) if isinstance(value, bytes | memoryview) else value
    return values


def _derive(spec: EventSpec, values: dict[str, Any]) -> None:
    """Fields the bridge computes: txid, wtxid, vsize from a raw transaction."""
    assert spec.ipc is not None
    if "txid" in spec.ipc.derived:
        summary = summarize(values["tx"])
        values.update(txid=summary.txid, wtxid=summary.wtxid, vsize=summary.vsize)


def body_method(spec: EventSpec, emitter: Emitter) -> Method:
    """A server method that turns the call into ``spec``'s record (or a dead letter)."""

    async def method(self: Any, call: Any) -> None:
        params = call.params
        try:
            values = read_binding(spec, params)
            _derive(spec, values)
        except (TransactionError, UnicodeDecodeError, ValueError) as error:
            emitter.reject(spec, f"{type(error).__name__}: {error}", _first_bytes(params, spec))
        else:
            emitter.body(spec, values)
        await emitter.wait_for_room()

    return method


def _first_bytes(params: Any, spec: EventSpec) -> bytes:
    """The bytes worth keeping in a dead letter: the call's first readable Data field."""
    assert spec.ipc is not None
    for _, theirs in spec.ipc.fields:
        try:
            value = params
            for part in theirs.split("."):
                value = getattr(value, part)
        except Exception:  # noqa: S112 (best effort: a dead letter without raw bytes)
            continue
        if isinstance(value, bytes | memoryview):
            return bytes(value)
    return b""


def _struct_bytes(struct: Any) -> bytes:
    """A struct read from a call, as a standalone Cap'n Proto message (for a dead letter:
    ``capnp decode`` with the interface's schema reads it back)."""
    try:
        return bytes(struct.as_builder().to_bytes())
    except Exception:  # best effort: a dead letter without raw bytes
        return b""


async def _destroy(self: Any, call: Any) -> None:
    """The node tells us the subscription is over (it also drops the Handler)."""
    self.destroyed = True


def _server(base: type, name: str, methods: dict[str, Method]) -> type:
    namespace: dict[str, Any] = {"destroyed": False, "destroy_context": _destroy, **methods}
    return type(name, (base,), namespace)


def chain_server(schemas: SchemaSet, emitter: Emitter) -> Any:
    """ChainNotifications: one method per catalogue event bound to it."""
    methods = {
        f"{spec.ipc.method}_context": body_method(spec, emitter)
        for spec in BY_NAME.values()
        if spec.ipc is not None and spec.ipc.interface == "ChainNotifications"
    }
    return _server(schemas.require("chain").ChainNotifications.Server, "Chain", methods)()


def notification_servers(schemas: SchemaSet, emitter: Emitter) -> dict[str, Any]:
    """Node.handle* callback name -> a server for it (each interface has one `call`)."""
    node = schemas.require("node")
    servers: dict[str, Any] = {}
    for spec in BY_NAME.values():
        ipc = spec.ipc
        if ipc is None or not ipc.interface.endswith("Callback"):
            continue
        interface = getattr(node, ipc.interface)
        methods = {"call_context": body_method(spec, emitter)}
        handle = "handle" + ipc.interface.removesuffix("Callback")
        servers[handle] = _server(interface.Server, ipc.interface, methods)()
    return servers


def utxo_server(schemas: SchemaSet, emitter: Emitter) -> Any:
    """UtxoCacheTrace (PR #32898): the same records as the utxocache tracepoints."""

    def method(spec: EventSpec) -> Method:
        assert spec.ipc is not None
        # UtxoInfo's fields in the record's field order (the order encode_values takes),
        # as the catalogue binds them.
        names = tuple(spec.ipc.fields_in_order(spec.fields))

        async def handler(self: Any, call: Any) -> None:
            info = call.params.utxoInfo
            values = tuple(getattr(info, name) for name in names)
            emitter.values(
                spec,
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in values),
                raw=lambda: _struct_bytes(info),
            )
            await emitter.wait_for_room()

        return handler

    methods = {f"{spec.ipc.method}_context": method(spec) for spec in UTXO_SPECS if spec.ipc}
    base = schemas.require("tracing_utxo").UtxoCacheTrace.Server
    return _server(base, "UtxoCacheTrace", methods)()


def net_server(schemas: SchemaSet, emitter: Emitter) -> Any:
    """NetMessageTrace (the RFC prototype): whole batches to the native encoder.

    The batch is copied into a message of our own (one C++ copy) and serialised, then
    read by C; per message that costs ~0.2 us against ~3 us for reading its fields
    through pycapnp."""
    batch_type = schemas.load_own(NET_BATCH_SCHEMA).NetMessageBatch

    async def messages_context(self: Any, call: Any) -> None:
        params = call.params
        messages = params.messages
        wrapper = batch_type.new_message()
        wrapper.messages = messages
        emitter.net_batch(wrapper.to_bytes(), params.dropped, len(messages))
        await emitter.wait_for_room()

    base = schemas.require("tracing_net").NetMessageTrace.Server
    return _server(base, "NetMessageTrace", {"messages_context": messages_context})()
