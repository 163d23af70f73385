"""Running ``tracebridge demo`` as a person would: a subprocess, stdout not a terminal."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

TRACEBRIDGE = Path(sys.executable).with_name("tracebridge")
# Startup (topic creation; BCC compiling, side by side with the IPC node for "both")
# plus the duration plus closing the books, with room for a loaded machine.
TIMEOUT_S = 240


def run_demo(
    kafka_bootstrap: str, topic_prefix: str, source: str, *, duration_s: int, rate: int
) -> str:
    """The demo's stdout, once it stopped by itself after ``duration_s``, exited 0, printed
    its live lines and no ANSI codes."""
    started = time.monotonic()
    result = subprocess.run(
        [
            str(TRACEBRIDGE),
            "demo",
            "--source",
            source,
            "-b",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
            "--duration",
            str(duration_s),
            "--no-view",
            "--rate",
            str(rate),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, f"{output}\n{result.stderr}"
    assert time.monotonic() - started >= duration_s
    assert "\x1b[" not in output, "no ANSI codes when stdout is not a terminal"
    assert re.search(r"^demo \d\d:\d\d firing: ", output, re.MULTILINE), output
    return output
