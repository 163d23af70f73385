"""The bridge's status file: written by the bridge, read by whoever supervises it.

``tracebridge run --status-file PATH`` keeps a small JSON document there: the state
(``waiting``, ``attached``, ``session_ended``, ``stopped``, ``failed``), the session,
the node's PID, and the last closed books. It is replaced atomically, so a reader never
sees half a file. The demo, the benchmark and the tests all watch the bridge through it,
as a supervisor or a health check would.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# How often a waiting reader looks at the file: well below a session's start-up time.
POLL_S = 0.05


class BridgeExited(RuntimeError):
    """The bridge stopped before reaching the state someone was waiting for."""


class StatusFile:
    """One status file. ``path=None`` makes updates no-ops (no file was asked for)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.state = "starting"
        self.details: dict[str, Any] = {}

    def update(self, state: str, **details: Any) -> None:
        self.state = state
        self.details = details
        if self.path is None:
            return
        payload = {"state": state, "bridge_pid": os.getpid(), "updated_ns": time.time_ns()}
        payload.update(details)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(self.path)

    def read(self) -> dict[str, Any]:
        """The current status; ``{"state": "starting"}`` until the bridge writes one."""
        if self.path is None:
            return {"state": self.state, **self.details}
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"state": "starting"}
        return data

    def wait_for(
        self,
        state: str,
        *,
        timeout: float,
        not_session: str | None = None,
        still_running: Callable[[], bool] | None = None,
        interrupted: threading.Event | None = None,
    ) -> dict[str, Any] | None:
        """Block until the status is ``state`` (for a session other than ``not_session``).

        Returns None if ``interrupted`` is set first; raises BridgeExited if
        ``still_running`` says the bridge is gone, TimeoutError after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.read()
            fresh = not_session is None or current.get("session_id") != not_session
            if current.get("state") == state and fresh:
                return current
            if still_running is not None and not still_running():
                current = self.read()  # it may have written the state just before exiting
                if current.get("state") == state and fresh:
                    return current
                raise BridgeExited(f"the bridge stopped before reaching {state!r}: {current}")
            if interrupted is not None:
                if interrupted.wait(POLL_S):
                    return None
            else:
                time.sleep(POLL_S)
        raise TimeoutError(f"the bridge did not reach {state!r} within {timeout:.0f} s")
