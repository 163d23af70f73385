"""pycapnp plumbing for the emulated node: typed servers, node-style errors, requests.

Each interface is implemented by a plain, typed Python class; :func:`serve` wraps an
instance in a subclass of pycapnp's ``<Interface>.Server`` that forwards method
lookups to it. That keeps pycapnp's untyped classes out of the implementations, and
turns a schema method the emulator does not implement into a clear error instead of
pycapnp's AttributeError traceback.

pycapnp calls a server method as ``method(**params, _context=call_context)`` on the
asyncio loop; the return value fills the results in declaration order.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.emulator.ipc_values import BadText

__all__ = [
    "INVALID_THREAD",
    "OLD_MINING_ERROR",
    "NodeError",
    "error_text",
    "feerate",
    "fill_builder",
    "install_error_format",
    "node_thread_name",
    "serve",
]


OLD_MINING_ERROR = "Old mining interface (@2) not supported. Please update your client!"


INVALID_THREAD = "invalid thread handle"


class NodeError(Exception):
    """An error the node reports to the client as ``std::exception: <what>``."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _ErrorFormat:
    """Stands in for the ``traceback`` module inside pycapnp (see install_error_format)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    def format_exception(self, exc_type: Any, exc: BaseException, tb: Any) -> list[str]:
        if isinstance(exc, NodeError):
            return [f"std::exception: {exc.what}"]
        return traceback.format_exception(exc_type, exc, tb)


def install_error_format(capnp_lib: Any) -> None:
    """Make pycapnp send NodeError as ``std::exception: <what>``, as a real node does.

    pycapnp turns a server exception into the remote error text with
    ``traceback.format_exception``, so a client would see a Python traceback. It looks
    the module up as the global ``_traceback`` of ``capnp.lib.capnp``, which this
    replaces in the emulator process only; other exceptions keep their traceback.
    """
    capnp_lib._traceback = _ErrorFormat()


@functools.cache
def _server_class(iface: Any) -> type:
    names = frozenset(iface.schema.method_names_inherited)
    iface_name = str(iface.schema.node.displayName).rsplit(":", 1)[-1]

    def __init__(self: Any, impl: object) -> None:
        self._impl = impl

    def __getattr__(self: Any, name: str) -> Any:
        impl = object.__getattribute__(self, "_impl")
        try:
            return getattr(impl, name)
        except AttributeError:
            if name in names:
                return _not_implemented(f"{iface_name}.{name}")
            raise

    return type(
        f"{iface_name}Server", (iface.Server,), {"__init__": __init__, "__getattr__": __getattr__}
    )


def _not_implemented(what: str) -> Callable[..., Coroutine[Any, Any, None]]:
    async def method(**_: Any) -> None:
        raise NodeError(f"{what} is not implemented by tracebridge's emulated node")

    return method


def serve(iface: Any, impl: object) -> Any:
    """A pycapnp server object for ``iface`` backed by ``impl``."""
    return _server_class(iface)(impl)


def feerate(sat_per_kvb: int) -> bytes:
    """CFeeRate as Data: int64 little-endian satoshis per 1000 vbytes (emulator's choice)."""
    return sat_per_kvb.to_bytes(8, "little", signed=True)


def fill_builder(builder: Any, params: dict[str, Any]) -> None:
    """Copy plain values into a pycapnp builder (dicts become nested structs)."""
    for key, value in params.items():
        if isinstance(value, dict):
            fill_builder(builder.init(key), value)
        elif isinstance(value, list):
            lst = builder.init(key, len(value))
            for i, item in enumerate(value):
                fill_builder(lst[i], item)
        elif isinstance(value, BadText):
            setattr(builder, key, bytes(value))
        else:
            setattr(builder, key, value)


def error_text(exc: BaseException) -> str:
    """The text of a pycapnp error (its description) or of any other exception."""
    return getattr(exc, "description", None) or f"{type(exc).__name__}: {exc}"


def node_thread_name(name: str, n: int) -> str:
    """How the node names a thread made through its ThreadMap."""
    return f"{name}-{os.getpid()}/{n}"
