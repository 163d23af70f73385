"""Keep log lines off the terminal while the live view redraws it.

A line written to stderr in the middle of a frame would be overwritten or would shift
the frame. While the view runs, records go to a :class:`LogTail` instead: the last few
are shown inside the frame, and warnings and errors are kept and written to stderr
once the view has let go of the terminal, so nothing important is lost.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

# Lines of recent log shown in the frame; warnings kept for replay after the view.
SHOWN_LINES = 3
KEPT_WARNINGS = 200


class LogTail(logging.Handler):
    """Remembers recent log lines (for the frame) and warnings (for afterwards)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._recent: deque[str] = deque(maxlen=SHOWN_LINES)
        self.held: deque[logging.LogRecord] = deque(maxlen=KEPT_WARNINGS)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._recent.append(self.format(record).splitlines()[0])
            if record.levelno >= logging.WARNING:
                self.held.append(record)
        except Exception:
            self.handleError(record)

    def recent(self) -> tuple[str, ...]:
        return tuple(self._recent)


def _writes_to_terminal(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream is not None and stream in (sys.stderr, sys.stdout)


@contextmanager
def logs_held(tail: LogTail) -> Iterator[LogTail]:
    """Route the root logger's terminal output into ``tail`` for the duration."""
    root = logging.getLogger()
    terminal = [h for h in root.handlers if _writes_to_terminal(h)]
    for handler in terminal:
        root.removeHandler(handler)
    root.addHandler(tail)
    try:
        yield tail
    finally:
        root.removeHandler(tail)
        for handler in terminal:
            root.addHandler(handler)
        for record in tail.held:
            for handler in terminal:
                if record.levelno >= handler.level:
                    handler.handle(record)
