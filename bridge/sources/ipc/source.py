"""The IPC source: connect to the node's socket, and again after it goes away.

A socket that is missing or refuses (the node is starting, restarting or stopped), or a
node that is shutting down (it still answers, but gives no Mining), is retried with
exponential backoff, logged once per outage. A node that speaks another version than
configured is not retried: that is a configuration problem, and the error says which
version it found.
"""

from __future__ import annotations

import logging
import threading

from bridge.config import IpcSourceConfig
from bridge.errors import IpcConnectError
from bridge.sources.ipc.session import IpcSourceSession

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.25


class IpcSource:
    """Opens one :class:`IpcSourceSession` per connection."""

    def __init__(self, config: IpcSourceConfig, poll_interval_s: float = 0.005) -> None:
        self.config = config
        self.reattach = config.reattach
        self.poll_interval_s = poll_interval_s
        self.max_batch = 16384
        self.path = config.socket_path()
        # (node version, interface) pairs reported as not offered: once per bridge
        # process and node version, not once per reconnect.
        self.reported: set[tuple[str, str]] = set()

    def close(self) -> None:
        """Nothing outlives a session over IPC."""

    def next_session(self, stop: threading.Event) -> IpcSourceSession | None:
        backoff = FIRST_BACKOFF_S
        reported = False
        while not stop.is_set():
            session = IpcSourceSession(self.config, self.path, self.reported)
            try:
                session.connect()
            except IpcConnectError as error:
                if not reported:
                    log.info("Waiting for the node's IPC socket (%s).", error)
                    reported = True
                stop.wait(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_backoff_s)
                continue
            return session
        return None
