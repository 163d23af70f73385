"""``broker.json``: how one process tells another where its broker runs.

``tracebridge kafka stop`` runs in a different process from the ``start`` that launched
the JVM, so everything it needs (pid, ports, the command-line marker) is written to the
run directory (``bridge.localservice.state``). The file is present while the broker runs
and removed once it is stopped.
"""

from dataclasses import dataclass

from bridge.localservice.state import ServiceState

STATE_FILE = "broker.json"


@dataclass(frozen=True, kw_only=True)
class BrokerState(ServiceState):
    """The content of broker.json: enough for another process to find and stop the broker."""

    port_fields = ("port", "controller_port")
    address_field = "bootstrap_servers"

    controller_port: int
    bootstrap_servers: str
    kafka_version: str
