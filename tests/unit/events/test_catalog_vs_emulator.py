"""The catalogue against the probes a binary actually has (its ``.note.stapsdt`` notes).

The emulated node (``bridge/emulator/usdt_node.c``) was written independently of the
catalogue from the same reference table, and the compiler describes each probe argument
it emits (``-8@%rdi``: signed, 8 bytes). Every catalogue field must be readable from
that argument the way the generated BPF reads it. Set ``BITCOIND=/path/to/bitcoind`` to
run the same checks against a real Bitcoin Core build.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator import build_usdt_node
from bridge.events.catalog import EVENTS
from bridge.events.spec import EventSpec, Kind
from bridge.sources.usdt.elf_notes import ProbeArg, UsdtProbe, read_usdt_probes
from bridge.sources.usdt.selection import split_by_presence

# Kind -> (bytes, signed) of the probe argument, as sys/sdt.h writes it.
# Pointers (hashes, strings, payloads) are 8-byte unsigned on 64-bit targets; C++ bool is
# 1-byte unsigned.
EXPECTED_ARG: dict[Kind, tuple[int, bool]] = {
    Kind.I32: (4, True),
    Kind.U32: (4, False),
    Kind.I64: (8, True),
    Kind.U64: (8, False),
    Kind.BOOL: (1, False),
    Kind.HASH32: (8, False),
    Kind.CSTR: (8, False),
    Kind.PAYLOAD: (8, False),
}

# Arguments whose catalogue kind and the type at Core's call site may differ in sign only
# (none today, so the check is exact). The four the reference doc calls uint64 but Core
# passes as int64 ("-8@" in the real bitcoind d84fc352, tests/realnode/test_real_probes.py):
# block_connected's sigops and duration and closed/evicted connections' time_established
# (TicksSinceEpoch<seconds>) are catalogued as int64, so they are checked exactly too.
SIGN_MAY_DIFFER: set[tuple[str, str]] = set()

WALLET_SUBSYSTEM = "coin_selection"


def _binaries() -> list[Any]:
    params = [pytest.param("emulator", id="emulator")]
    if os.environ.get("BITCOIND"):
        params.append(pytest.param(os.environ["BITCOIND"], id="bitcoind"))
    return params


@pytest.fixture(scope="module", params=_binaries())
def binary(request: pytest.FixtureRequest) -> tuple[str, Path]:
    which = str(request.param)
    if which == "emulator":
        return which, build_usdt_node()
    return "bitcoind", Path(which)


def sites(path: Path) -> dict[str, list[UsdtProbe]]:
    by_name: dict[str, list[UsdtProbe]] = defaultdict(list)
    for probe in read_usdt_probes(path):
        by_name[probe.qualified_name].append(probe)
    return dict(by_name)


def compatible(spec: EventSpec, position: int, probe_arg: ProbeArg) -> str | None:
    """None if the catalogue field can be read from ``probe_arg``, else why not."""
    field = spec.fields[position]
    size, signed = EXPECTED_ARG[field.kind]
    if probe_arg.is_float:
        return f"arg {position + 1} ({field.name}) is floating point"
    if probe_arg.size != size:
        return f"arg {position + 1} ({field.name}): {probe_arg.size} bytes, catalogue {size}"
    if probe_arg.signed != signed and (spec.name, field.name) not in SIGN_MAY_DIFFER:
        return (
            f"arg {position + 1} ({field.name}): {'signed' if probe_arg.signed else 'unsigned'}"
            f", catalogue {field.kind.value}"
        )
    return None


def test_every_catalogue_probe_exists(binary: tuple[str, Path]) -> None:
    which, path = binary
    found = sites(path)
    for spec in EVENTS:
        if which == "bitcoind" and spec.subsystem == WALLET_SUBSYSTEM and spec.name not in found:
            continue  # a build without the wallet has no coin_selection probes
        assert spec.name in found, f"{spec.name} is not a probe of {path}"


def test_the_emulator_has_no_probe_the_catalogue_lacks() -> None:
    assert set(sites(build_usdt_node())) == {spec.name for spec in EVENTS}


@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: s.name)
def test_arguments_match_the_catalogue(binary: tuple[str, Path], spec: EventSpec) -> None:
    _, path = binary
    probe_sites = sites(path).get(spec.name)
    if probe_sites is None:
        pytest.skip(f"{spec.name} is not in {path}")
    for probe in probe_sites:  # a probe inlined in several places has a note per site
        assert len(probe.args) == len(spec.fields), (
            f"{spec.name} at {probe.pc:#x}: {len(probe.args)} args, catalogue {len(spec.fields)}"
        )
        problems = [
            why
            for position, probe_arg in enumerate(probe.args)
            if (why := compatible(spec, position, probe_arg)) is not None
        ]
        assert problems == [], f"{spec.name} at {probe.pc:#x}"


@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: s.name)
def test_every_probe_has_a_semaphore(binary: tuple[str, Path], spec: EventSpec) -> None:
    """Core gates every tracepoint on a semaphore; the BPF side relies on BCC raising it."""
    _, path = binary
    for probe in sites(path).get(spec.name, []):
        assert probe.semaphore != 0, spec.name


def test_the_compatibility_check_catches_mismatches() -> None:
    """Guard for the check above: a wrong width or sign must be reported."""
    block = next(s for s in EVENTS if s.name == "validation:block_connected")
    flush = next(s for s in EVENTS if s.name == "utxocache:flush")
    assert compatible(block, 1, ProbeArg.parse("-4@%r13d")) is None  # height: int32
    assert compatible(block, 1, ProbeArg.parse("4@%r13d")) is not None
    assert compatible(block, 1, ProbeArg.parse("-8@%r13")) is not None
    assert compatible(block, 0, ProbeArg.parse("8@%rdi")) is None  # hash pointer
    assert compatible(block, 4, ProbeArg.parse("-8@%r8")) is None  # sigops: int64
    assert compatible(block, 4, ProbeArg.parse("8@%r8")) is not None
    assert compatible(block, 5, ProbeArg.parse("-8@%r9")) is None  # duration: int64
    assert compatible(block, 5, ProbeArg.parse("8@%r9")) is not None
    assert compatible(block, 2, ProbeArg.parse("-8@%rax")) is not None  # transactions: u64
    assert compatible(flush, 4, ProbeArg.parse("1@%r8b")) is None  # bool
    assert compatible(flush, 4, ProbeArg.parse("4@%r8d")) is not None
    assert compatible(flush, 0, ProbeArg.parse("-8f@%xmm0")) is not None


def test_a_wallet_less_build_lacks_exactly_coin_selection() -> None:
    probes = set(sites(build_usdt_node(wallet=False)))
    available = split_by_presence(EVENTS, probes)
    assert {spec.subsystem for spec in available.missing} == {WALLET_SUBSYSTEM}
    assert len(available.missing) == 4
    assert len(available.present) == 16
