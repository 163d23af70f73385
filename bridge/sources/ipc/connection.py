"""Connecting to bitcoin-node's IPC socket, and finding out which version it speaks.

The sequence follows Bitcoin Core's own Python client (test/functional/interface_ipc.py)
with one addition: the bridge hands ``Init.construct`` a ThreadMap of its own, because
callbacks that carry a Context (NetMessageTrace, ChainNotifications, the Node
notifications) make the node create a thread on the caller's side first. Every call then
carries a Context whose ``thread`` the node made and whose ``callbackThread`` is ours.

Versions: Init's ordinals moved (v30 ``makeMining @2``; v31 ``makeMining @3``; master adds
``makeRpc @4``). A node answers UNIMPLEMENTED for an ordinal it does not have, so probing
@4 then @3 tells master (and the proposals, which extend master) from v31 from v30.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import capnp

from bridge.errors import IpcConnectError, IpcVersionError
from bridge.sources.ipc.schemas import SchemaSet, Version

log = logging.getLogger(__name__)

# The text a v31+ node answers to a v30 client's makeMining @2 (src/ipc/capnp/mining.cpp).
OLD_MINING_ERROR = "Old mining interface (@2) not supported"


def is_unimplemented(error: BaseException) -> bool:
    """True for Cap'n Proto's 'method not implemented' (an ordinal the node lacks)."""
    kind = str(getattr(error, "type", "")).upper()
    return kind == "UNIMPLEMENTED" or "unimplemented" in str(error).lower()


def thread_servers(schemas: SchemaSet) -> tuple[type, type]:
    """Thread and ThreadMap servers built from ``schemas``' own parser (pycapnp refuses a
    capability whose class comes from another parser, even with identical IDs)."""

    class ClientThread(schemas.proxy.Thread.Server):  # type: ignore[misc, name-defined]
        def __init__(self, name: str) -> None:
            self.name = name

        async def getName(self, **_: Any) -> str:
            return self.name

    class ClientThreadMap(schemas.proxy.ThreadMap.Server):  # type: ignore[misc, name-defined]
        """The node makes threads here for its context-carrying callbacks."""

        def __init__(self) -> None:
            self.threads: list[Any] = []  # keep them: the node refers to them

        async def makeThread(self, name: str, **_: Any) -> Any:
            thread = ClientThread(f"tracebridge-{name}")
            self.threads.append(thread)
            return thread

    return ClientThread, ClientThreadMap


@dataclass
class Connection:
    """One open connection. Dropping ``client`` closes it, so keep this object."""

    path: Path
    schemas: SchemaSet
    client: Any
    init: Any
    context: Any
    thread_map: Any


async def open_connection(path: Path, schemas: SchemaSet) -> Connection:
    """Connect, bootstrap Init, exchange ThreadMaps and make a thread; IpcConnectError if
    the socket is absent or the node does not answer like a bitcoin-node."""
    try:
        stream = await capnp.AsyncIoStream.create_unix_connection(str(path))
    except Exception as error:  # OSError, or KjException for a refused connection
        raise IpcConnectError(f"cannot connect to {path}: {error}") from None
    client = capnp.TwoPartyClient(stream)
    try:
        init = client.bootstrap().cast_as(schemas.init.Init)
        thread_cls, thread_map_cls = thread_servers(schemas)
        thread_map = thread_map_cls()
        node_threads = (await init.construct(thread_map)).threadMap
        context = schemas.proxy.Context()
        context.thread = (await node_threads.makeThread("tracebridge")).result
        context.callbackThread = thread_cls("tracebridge-caller")
    except Exception as error:
        raise IpcConnectError(
            f"{path} did not answer Init.construct/ThreadMap.makeThread like a bitcoin-node: "
            f"{error}"
        ) from None
    return Connection(path, schemas, client, init, context, thread_map)


async def _implemented(promise: Any) -> bool:
    try:
        await promise
    except Exception as error:
        if is_unimplemented(error):
            return False
        raise
    return True


async def detect_version(conn: Connection) -> Version:
    """Which merged Init the node has: 'master' (which the proposals extend), 'v31' or
    'v30'. ``conn`` must use a master-compatible set (master or proposed)."""
    init, ctx = conn.init, conn.context
    if await _implemented(init.makeRpc(ctx)):
        return "master"
    if await _implemented(init.makeMining(ctx)):
        return "v31"
    return "v30"


def check_version(configured: str, found: Version) -> None:
    """A configured version the node does not speak is a clear error, not a traceback."""
    if configured in ("auto", found) or (configured == "proposed" and found == "master"):
        return
    hints = {
        "v30": "it does not implement Init.makeMining @3 (v31 and later do)",
        "v31": "it implements Init.makeMining @3 but not Init.makeRpc @4",
        "master": "it implements Init.makeRpc @4",
    }
    extra = ""
    if configured == "v30":
        extra = f"; a v30 client's makeMining @2 would get '{OLD_MINING_ERROR}'"
    raise IpcVersionError(
        f"ipc.version is {configured!r} but the node speaks {found} ({hints[found]}{extra}). "
        f"Set ipc.version = 'auto' or '{found}'."
    )
