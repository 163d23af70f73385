"""Putting the view on the terminal: frames redrawn in place, or plain lines.

The screen is redrawn in place with plain ANSI (cursor up, clear to end of line); line
wrapping is switched off while the view runs, so a narrow terminal clips lines instead
of breaking the redraw. :class:`Viewer` never raises: a failing live view falls back to
plain lines, and failing plain lines fall silent; the pipeline it shows keeps running
either way.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Sequence
from typing import TextIO

from bridge.demo.logtail import LogTail, logs_held
from bridge.demo.view import ViewState, plain_line, render_frame

log = logging.getLogger(__name__)

# ANSI: hide/show the cursor, auto-wrap off/on, clear to end of line / of screen.
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
WRAP_OFF, WRAP_ON = "\x1b[?7l", "\x1b[?7h"
CLEAR_LINE, CLEAR_BELOW = "\x1b[K", "\x1b[J"
# Terminal rows kept free below the frame, so the cursor never scrolls the frame's top
# line off screen (after which moving up could not reach it to redraw).
SPARE_ROWS = 1


class LiveScreen:
    """Redraws a block of lines in place at the bottom of the terminal's output."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._drawn = 0
        out.write(HIDE_CURSOR + WRAP_OFF)
        out.flush()

    @property
    def rows(self) -> int:
        """Lines a frame may take without scrolling its top off screen."""
        return max(1, shutil.get_terminal_size().lines - SPARE_ROWS)

    def draw(self, lines: Sequence[str]) -> None:
        lines = list(lines)[: self.rows]
        up = f"\r\x1b[{self._drawn}A" if self._drawn else "\r"
        body = "".join(f"{line}{CLEAR_LINE}\n" for line in lines)
        self._out.write(up + body + CLEAR_BELOW)
        self._out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self._out.write(WRAP_ON + SHOW_CURSOR)
        self._out.flush()


class Viewer:
    """Shows states live (``live``) or as plain lines every ``plain_every_s``."""

    def __init__(self, out: TextIO, *, live: bool, plain_every_s: float) -> None:
        self._out = out
        self._plain_every_s = plain_every_s
        self._next_plain = 0.0
        self._broken = False
        self._tail = LogTail()
        self._logs = contextlib.ExitStack()
        self._screen: LiveScreen | None = None
        if live:
            try:
                self._logs.enter_context(logs_held(self._tail))
                self._screen = LiveScreen(out)
            except Exception:
                self._degrade()

    @property
    def live(self) -> bool:
        return self._screen is not None

    def recent_log(self) -> tuple[str, ...]:
        return self._tail.recent() if self.live else ()

    def show(self, state: ViewState, *, force: bool = False) -> None:
        """Draw ``state``; plain lines only when due (or ``force``)."""
        if self._broken:
            return
        try:
            if self._screen is not None:
                screen = self._screen
                screen.draw(render_frame(state, color=True, rows=screen.rows))
                return
            now = time.monotonic()
            if force or now >= self._next_plain:
                self._next_plain = now + self._plain_every_s
                self._out.write(plain_line(state) + "\n")
                self._out.flush()
        except Exception:
            if self._screen is not None:
                self._degrade()
            else:
                log.exception("The demo's status lines failed; continuing without them.")
                self._broken = True

    def close(self) -> None:
        """Give the terminal back (cursor, wrapping, and the log lines held meanwhile)."""
        screen, self._screen = self._screen, None
        try:
            if screen is not None:
                screen.close()
        except Exception:
            log.debug("Restoring the terminal failed.", exc_info=True)
        finally:
            self._logs.close()

    def _degrade(self) -> None:
        self.close()
        log.exception("The live view failed; showing plain status lines instead.")
