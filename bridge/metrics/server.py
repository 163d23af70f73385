"""The HTTP endpoint Prometheus scrapes (``/metrics``), on its own registry.

Its own registry, not prometheus_client's global one: the endpoint serves exactly what
the bridge states, and tests can run several bridges in one process. The server runs
in a daemon thread; scrapes never touch the bridge's hot path (see
:class:`~bridge.metrics.state.BridgeMetrics`).
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from bridge.config import MetricsConfig
from bridge.errors import ConfigError
from bridge.metrics.collector import BridgeCollector
from bridge.metrics.state import BridgeMetrics

log = logging.getLogger(__name__)


class MetricsServer:
    """Serves one :class:`BridgeMetrics` until :meth:`stop`."""

    def __init__(self, config: MetricsConfig, metrics: BridgeMetrics) -> None:
        assert config.port is not None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BridgeCollector(metrics))
        try:
            server, thread = start_http_server(config.port, config.address, self.registry)
        except OSError as error:
            raise ConfigError(
                f"metrics.port: cannot listen on {config.address}:{config.port}: "
                f"{error.strerror or error}"
            ) from None
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port: int = server.server_address[1]
        log.info("Serving Prometheus metrics on http://%s:%d/metrics.", config.address, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
