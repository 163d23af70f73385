"""The end of a command's or a JVM's output: where Maven, pip and the JVM put the cause."""

import re
from pathlib import Path

# Enough to show the failing artifact, or a fatal exception and its cause, without burying
# the message (the JVMs' console logs are WARN-only, see deploy/kafka/log4j2.properties).
TAIL_LINES = 30

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def tail_text(text: str, lines: int = TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``text``, without colour codes.

    Debian's Maven 3.8 emits colour resets even in batch mode, and Quarkus colours its log
    levels; either would garble the error text.
    """
    plain = _ANSI_ESCAPE.sub("", text)
    return "\n".join(plain.rstrip().splitlines()[-lines:]) or "(no output)"


def log_tail(path: Path) -> str:
    """Return the last lines of a JVM's output file, labelled, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} is missing)"
    return f"Last lines of {path}:\n{tail_text(text)}"
