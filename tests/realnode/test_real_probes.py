"""The catalogue against the probes of the real bitcoind this tier runs.

``tests/unit/events/test_catalog_vs_emulator.py`` checks the catalogue against the
emulated node on every run, and against a real build only when ``BITCOIND`` names one.
Here the project's own Bitcoin Core build is always the judge: every catalogued
tracepoint must be in it, with as many arguments, each readable the way the generated
BPF reads it, and gated by a semaphore in ``.probes`` (BCC raises it; without it
nothing fires).
"""

from __future__ import annotations

import pytest

from bridge.events.catalog import EVENTS
from bridge.events.spec import EventSpec
from bridge.realnode.binaries import CoreBinaries
from bridge.sources.usdt.elf_notes import semaphore_in_probes_section
from tests.unit.events.test_catalog_vs_emulator import compatible, sites

pytestmark = pytest.mark.realnode


def test_real_bitcoind_has_exactly_the_catalogued_probes(core_binaries: CoreBinaries) -> None:
    """All 20, the wallet's included, and none the catalogue lacks."""
    assert set(sites(core_binaries.bitcoind)) == {spec.name for spec in EVENTS}


@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: s.name)
def test_real_probe_arguments_match_the_catalogue(
    core_binaries: CoreBinaries, spec: EventSpec
) -> None:
    path = core_binaries.bitcoind
    for probe in sites(path)[spec.name]:
        assert len(probe.args) == len(spec.fields), f"{spec.name} at {probe.pc:#x}"
        problems = [
            why
            for position, argument in enumerate(probe.args)
            if (why := compatible(spec, position, argument)) is not None
        ]
        assert problems == [], f"{spec.name} at {probe.pc:#x}"
        assert probe.semaphore != 0, spec.name
        assert semaphore_in_probes_section(path, probe), spec.name
