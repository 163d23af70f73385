"""Loopback ports for the local broker: pick free ones, and refuse busy ones early.

A busy port otherwise surfaces seconds later as a ``BindException`` buried in the JVM's
output; checking before any JVM starts gives an error that names the port instead.
"""

import contextlib
import socket

from bridge.localkafka import LocalKafkaError

# The broker listens on loopback only: it is for tests and local runs, never for a network.
HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free ports (all bound at once, so distinct)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def resolve_ports(port: int | None, controller_port: int | None) -> tuple[int, int]:
    """Return the client and controller ports, each None replaced by a distinct free port."""
    free = iter(free_ports([port, controller_port].count(None)))
    return (
        port if port is not None else next(free),
        controller_port if controller_port is not None else next(free),
    )


def ensure_port_free(port: int, role: str) -> None:
    """Fail fast, naming the port, rather than let the JVM die with a BindException later."""
    with socket.socket() as sock:
        # Like the JVM's server sockets, ignore TIME_WAIT leftovers of a previous broker;
        # a socket still listening on the port makes bind() fail regardless.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise LocalKafkaError(
                f"Cannot start the local Kafka broker: its {role} port {port} on {HOST} is "
                f"already in use ({exc.strerror}). Stop whatever listens there or choose "
                "another port (0 picks a free one)."
            ) from exc


def port_accepts(port: int, timeout: float) -> bool:
    """Return whether something accepts TCP connections on ``port``, within ``timeout``."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((HOST, port)) == 0
