"""Ctrl-C in stages: the first asks for a clean stop, the second hurries it, the third
gives up.

A clean stop takes a few seconds (the node reports, the bridge drains and settles with
Kafka), and up to a minute when Kafka is unreachable, so a person pressing Ctrl-C again
must get a faster way out, yet never a stop that skips closing the books by accident.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Interrupts:
    """``first``: stop the demo cleanly. ``second``: tell the bridge to stop now. After
    that SIGINT is Python's default again, so a third Ctrl-C raises KeyboardInterrupt
    and the demo's cleanup kills what is left."""

    def __init__(self) -> None:
        self.first = threading.Event()
        self.second = threading.Event()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.first.is_set():
            self.first.set()
            return
        self.second.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT and SIGTERM while the block runs; restore the old handlers after
        (the demo may run inside a test process that has handlers of its own)."""
        previous: dict[signal.Signals, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
