"""Loopback ports for the local services: pick free ones, and refuse busy ones early.

A busy port otherwise surfaces seconds later as a ``BindException`` buried in the JVM's
output; checking before any JVM starts gives an error that names the port instead.
"""

import contextlib
import socket
from collections.abc import Sequence

# The services listen on loopback only: they are for tests and local runs, never a network.
HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free ports (all bound at once, so distinct)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def resolve_ports(ports: Sequence[int | None]) -> tuple[int, ...]:
    """Return ``ports`` with each None replaced by a distinct free port."""
    free = iter(free_ports(list(ports).count(None)))
    return tuple(port if port is not None else next(free) for port in ports)


def ensure_port_free(port: int, role: str, service: str, error: type[Exception]) -> None:
    """Fail fast, naming the port, rather than let the JVM die with a BindException later.

    ``service`` names what cannot start ("Kafka broker"); ``error`` is the class raised.
    """
    with socket.socket() as sock:
        # Like the JVM's server sockets, ignore TIME_WAIT leftovers of a previous run;
        # a socket still listening on the port makes bind() fail regardless.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise error(
                f"Cannot start the local {service}: its {role} port {port} on {HOST} is "
                f"already in use ({exc.strerror}). Stop whatever listens there or choose "
                "another port (0 picks a free one)."
            ) from exc


def port_accepts(port: int, timeout: float) -> bool:
    """Return whether something accepts TCP connections on ``port``, within ``timeout``."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((HOST, port)) == 0
