"""The unchanged bridge in a background thread, observed only through its status file.

The demo watches the bridge the way a supervisor would (the status file, the ledger
callback), so what it shows is what the bridge does in production, not a special mode.
Whatever the source (USDT or IPC), the runner is the same; side by side there are two.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from bridge.app import FINISH_FLUSH_S, Bridge
from bridge.config import BridgeSettings
from bridge.ledger import StreamLedger
from bridge.sources.base import Source
from bridge.status import BridgeExited, StatusFile

log = logging.getLogger(__name__)

# Attaching compiles the BPF program with BCC (5-20 s on 2 busy cores) after creating
# the topics (up to 30 s against a slow broker).
ATTACH_TIMEOUT_S = 180.0
# Closing the books may wait for Kafka twice (records, then the final ledger), each up
# to FINISH_FLUSH_S; a little more for draining the rings and closing the producer.
SESSION_CLOSE_TIMEOUT_S = 2 * FINISH_FLUSH_S + 15.0
# After the bridge's stop event is set: the same flushes, then the demo gives up.
BRIDGE_ABORT_TIMEOUT_S = 2 * FINISH_FLUSH_S + 15.0
# Granularity of waits that must notice Ctrl-C and a failed bridge thread.
WAIT_STEP_S = 0.1


class BridgeRunner:
    """One bridge (one source) in a background thread."""

    def __init__(
        self,
        settings: BridgeSettings,
        source: Source,
        status_file: Path,
        on_books: Callable[[list[StreamLedger]], None],
        *,
        name: str = "bridge",
    ) -> None:
        self.stop = threading.Event()
        self.status_file = status_file
        self.bridge = Bridge(
            settings, source, stop=self.stop, status_file=status_file, on_books=on_books
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as error:  # handed to the main thread, which reports it
            self.error = error

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        return StatusFile(self.status_file).read()

    def wait_attached(self, interrupted: threading.Event) -> dict[str, Any] | None:
        """The status once attached; None if interrupted. Raises the bridge's own error
        if it failed to start (unreachable Kafka, BPF that does not load, ...)."""
        try:
            return StatusFile(self.status_file).wait_for(
                "attached",
                timeout=ATTACH_TIMEOUT_S,
                still_running=lambda: self.running,
                interrupted=interrupted,
            )
        except BridgeExited as exited:
            self._raise_error(str(exited))

    def finish(self, hurry: threading.Event) -> bool:
        """Wait for the session to close by itself (the node has exited); set the stop
        event if ``hurry`` is set or it takes too long. True if the books were closed."""
        deadline = time.monotonic() + SESSION_CLOSE_TIMEOUT_S
        while self.running and time.monotonic() < deadline and not hurry.is_set():
            self._thread.join(WAIT_STEP_S)
        if self.running:
            log.warning("Telling the bridge to stop now.")
            self.stop.set()
            self._thread.join(BRIDGE_ABORT_TIMEOUT_S)
        status = self.status()
        return (
            not self.running
            and self.error is None
            and status.get("state") == "stopped"
            and "books" in status
        )

    def shutdown(self) -> None:
        """Last resort on any exit path: the bridge must not outlive the demo."""
        if self.running:
            self.stop.set()
            self._thread.join(BRIDGE_ABORT_TIMEOUT_S)

    def _raise_error(self, fallback: str) -> NoReturn:
        if self.error is not None:
            raise self.error
        raise RuntimeError(fallback)
