"""What the person asked for on the command line, and what follows from it directly.

Kept apart from the pipeline so the emulated-node adapters and the report can read the
plan without importing the machinery that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

# One source, or both side by side (the RFC's comparison in miniature).
SourceChoice: TypeAlias = Literal["usdt", "ipc", "both"]
SourceName: TypeAlias = Literal["usdt", "ipc"]
SOURCE_CHOICES: Final[tuple[SourceChoice, ...]] = get_args(SourceChoice)


@dataclass(frozen=True)
class DemoPlan:
    """What the person asked for on the command line."""

    rate: float  # events/s of each emulated node (0: flat out)
    tracepoints: tuple[str, ...]  # USDT globs or subsystem names; empty: all
    bootstrap_servers: str | None  # None: start (or reuse) the local broker
    topic_prefix: str
    node_id: str
    source: SourceChoice = "usdt"

    @property
    def sources(self) -> tuple[SourceName, ...]:
        """The pipelines to run, in the order they are shown."""
        if self.source == "both":
            return ("usdt", "ipc")
        return (self.source,)

    def node_id_for(self, source: SourceName) -> str:
        """One source keeps the given node id; side by side, each pipeline gets its own
        (``<node-id>-usdt``, ``<node-id>-ipc``) so the records of the two can be told
        apart in the shared topics and their ledgers do not mix."""
        return self.node_id if len(self.sources) == 1 else f"{self.node_id}-{source}"
