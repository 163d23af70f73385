"""Which tracepoints to attach: the configured patterns, minus what the binary lacks.

A tracepoint missing from the binary is normal (a node built without the wallet has no
``coin_selection`` probes), so it is reported once and skipped, never fatal.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.errors import ConfigError
from bridge.events.catalog import EVENTS, SUBSYSTEMS
from bridge.events.spec import EventSpec


def select_events(patterns: Sequence[str]) -> list[EventSpec]:
    """Catalogue events matching any pattern (a glob over 'subsystem:event' or a subsystem)."""
    chosen: list[EventSpec] = []
    for pattern in patterns:
        glob = f"{pattern}:*" if pattern in SUBSYSTEMS else pattern
        matched = [spec for spec in EVENTS if fnmatch.fnmatchcase(spec.name, glob)]
        if not matched:
            raise ConfigError(
                f"usdt.tracepoints: {pattern!r} matches no tracepoint "
                f"(see `tracebridge schemas` for the list)"
            )
        chosen.extend(spec for spec in matched if spec not in chosen)
    return sorted(chosen, key=lambda spec: spec.tp_id)


@dataclass(frozen=True)
class Availability:
    """The selected tracepoints split by whether the binary provides them."""

    present: tuple[EventSpec, ...]
    missing: tuple[EventSpec, ...]


def split_by_presence(selected: Iterable[EventSpec], probe_names: set[str]) -> Availability:
    """``probe_names`` are 'provider:name' strings read from the binary's ELF notes."""
    present: list[EventSpec] = []
    missing: list[EventSpec] = []
    for spec in selected:
        (present if spec.name in probe_names else missing).append(spec)
    return Availability(tuple(present), tuple(missing))
