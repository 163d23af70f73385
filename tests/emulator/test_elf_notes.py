"""The ELF note parser against the emulator, readelf, a third-party binary and bad input.

The expected probe table is written here from shared/reference/bitcoin-tracing.md
section 1.2, not imported from the emulator, so a mistake in either shows up as a
mismatch instead of agreeing with itself.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.emulator import build_usdt_node
from bridge.sources.usdt.elf_notes import (
    ElfNoteError,
    ProbeArg,
    UsdtProbe,
    read_sections,
    read_usdt_probes,
    section_containing,
    semaphore_in_probes_section,
)

# C type -> (bytes, signed) as sys/sdt.h encodes them ("-8@", "4@", ...). Pointers
# (strings, hashes, payloads) are 8-byte unsigned on x86-64; bool is 1-byte unsigned.
_TYPES: dict[str, tuple[int, bool]] = {
    "int64": (8, True),
    "uint64": (8, False),
    "int32": (4, True),
    "uint32": (4, False),
    "bool": (1, False),
    "ptr": (8, False),
}

# Reference doc section 1.2, argument by argument.
EXPECTED: dict[str, tuple[str, ...]] = {
    # peer id, addr, conn type, msg type, size, payload
    "net:inbound_message": ("int64", "ptr", "ptr", "ptr", "uint64", "ptr"),
    "net:outbound_message": ("int64", "ptr", "ptr", "ptr", "uint64", "ptr"),
    # peer id, addr, conn type, network, existing connections
    "net:inbound_connection": ("int64", "ptr", "ptr", "uint32", "uint64"),
    "net:outbound_connection": ("int64", "ptr", "ptr", "uint32", "uint64"),
    # peer id, addr, conn type, network, time established (the doc says uint64; the real
    # bitcoind passes int64, "-8@", and the emulator follows it)
    "net:evicted_inbound_connection": ("int64", "ptr", "ptr", "uint32", "int64"),
    "net:closed_connection": ("int64", "ptr", "ptr", "uint32", "int64"),
    # peer id, reason
    "net:misbehaving_connection": ("int64", "ptr"),
    # hash, height, transactions, inputs, sigops, duration ns (sigops and duration: the doc
    # says uint64; the real bitcoind passes int64, "-8@", and the emulator follows it)
    "validation:block_connected": ("ptr", "int32", "uint64", "int32", "int64", "int64"),
    # duration us, mode, coins, memory, for prune
    "utxocache:flush": ("int64", "uint32", "uint64", "uint64", "bool"),
    # txid, index, height, value, coinbase
    "utxocache:add": ("ptr", "uint32", "uint32", "int64", "bool"),
    "utxocache:spent": ("ptr", "uint32", "uint32", "int64", "bool"),
    "utxocache:uncache": ("ptr", "uint32", "uint32", "int64", "bool"),
    # txid, vsize, fee
    "mempool:added": ("ptr", "int32", "int64"),
    # txid, reason, vsize, fee, entry time
    "mempool:removed": ("ptr", "ptr", "int32", "int64", "uint64"),
    # replaced txid, vsize, fee, entry time, replacement id, vsize, fee, by transaction
    "mempool:replaced": (
        "ptr",
        "int32",
        "int64",
        "uint64",
        "ptr",
        "int32",
        "int64",
        "bool",
    ),
    # txid, reason
    "mempool:rejected": ("ptr", "ptr"),
    # wallet, algorithm, target, waste, selected value
    "coin_selection:selected_coins": ("ptr", "ptr", "int64", "int64", "int64"),
    # wallet, success, fee, change position
    "coin_selection:normal_create_tx_internal": ("ptr", "bool", "int64", "int32"),
    # wallet
    "coin_selection:attempting_aps_create_tx": ("ptr",),
    # wallet, use aps, success, fee, change position
    "coin_selection:aps_create_tx_internal": ("ptr", "bool", "bool", "int64", "int32"),
}
WALLET_ONLY = {name for name in EXPECTED if name.startswith("coin_selection:")}

_READELF_NOTE = re.compile(
    r"Provider: (\S+)\s+Name: (\S+)\s+"
    r"Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), Semaphore: (0x[0-9a-f]+)\s+"
    r"Arguments:[ \t]*([^\n]*)"
)


@pytest.fixture(scope="module", params=[True, False], ids=["wallet", "no-wallet"])
def variant(request: pytest.FixtureRequest) -> tuple[bool, Path]:
    wallet: bool = request.param
    return wallet, build_usdt_node(wallet=wallet)


def _readelf_probes(path: Path) -> list[tuple[str, str, int, int, int, str]]:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf (binutils) is not installed")
    out = subprocess.run(
        [readelf, "-n", "--wide", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [
        (p, n, int(loc, 16), int(base, 16), int(sem, 16), args.strip())
        for p, n, loc, base, sem, args in _READELF_NOTE.findall(out)
    ]


def _as_readelf(probe: UsdtProbe) -> tuple[str, str, int, int, int, str]:
    args = " ".join(
        f"{'-' if a.signed else ''}{a.size}{'f' if a.is_float else ''}@{a.spec}" for a in probe.args
    )
    return probe.provider, probe.name, probe.pc, probe.base, probe.semaphore, args


def test_emulator_has_exactly_the_expected_probes(variant: tuple[bool, Path]) -> None:
    wallet, binary = variant
    probes = read_usdt_probes(binary)
    names = [p.qualified_name for p in probes]
    expected = set(EXPECTED) if wallet else set(EXPECTED) - WALLET_ONLY
    assert len(probes) == (20 if wallet else 16)
    assert sorted(names) == sorted(expected), "one probe site per tracepoint"
    for probe in probes:
        got = [(a.size, a.signed) for a in probe.args]
        want = [_TYPES[t] for t in EXPECTED[probe.qualified_name]]
        assert got == want, f"{probe.qualified_name}: {[a.ctype for a in probe.args]}"
        assert not any(a.is_float for a in probe.args)


def test_every_probe_has_its_own_semaphore_in_dot_probes(variant: tuple[bool, Path]) -> None:
    _, binary = variant
    probes = read_usdt_probes(binary)
    probes_section = next(s for s in read_sections(binary) if s.name == ".probes")
    for probe in probes:
        assert probe.semaphore != 0, probe.qualified_name
        assert semaphore_in_probes_section(binary, probe), probe.qualified_name
        # unsigned short semaphores, 2-byte aligned, inside the section's file image
        assert probe.semaphore % 2 == 0
        assert (
            probe.semaphore_offset == probe.semaphore - probes_section.addr + probes_section.offset
        )
        assert probe.pc_offset != 0
        text = section_containing(binary, probe.pc)
        assert text is not None
        assert text.name == ".text", probe.qualified_name
    assert len({p.semaphore for p in probes}) == len(probes), "semaphores are not shared"
    # 2 bytes per semaphore, nothing else in the section (as in Core)
    assert probes_section.size == 2 * len(probes)


def test_emulator_notes_match_readelf(variant: tuple[bool, Path]) -> None:
    _, binary = variant
    ours = sorted(_as_readelf(p) for p in read_usdt_probes(binary))
    theirs = sorted(_readelf_probes(binary))
    assert ours == theirs
    # not prelinked, so no .stapsdt.base adjustment: the base is the section's address
    base = next(s for s in read_sections(binary) if s.name == ".stapsdt.base")
    assert {p.base for p in read_usdt_probes(binary)} == {base.addr}


def test_third_party_binary_matches_readelf() -> None:
    """Debian's python3 is built with DTrace probes: a non-PIE binary we did not write."""
    binary = Path(sys.executable).resolve()
    theirs = sorted(_readelf_probes(binary))
    if not theirs:
        pytest.skip(f"{binary} has no stapsdt notes")
    assert sorted(_as_readelf(p) for p in read_usdt_probes(binary)) == theirs


def test_binary_without_notes(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "plain.c"
    src.write_text("int main(void) { return 0; }\n")
    subprocess.run([gcc, "-o", str(tmp_path / "plain"), str(src)], check=True)
    assert read_usdt_probes(tmp_path / "plain") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"#!/bin/sh\necho hello\n", "not an ELF file"),
        (b"\x7fELF\x02\x01", "truncated"),
        (b"\x7fELF\x01\x01\x01" + bytes(64), "only 64-bit"),
        (b"\x7fELF\x02\x02\x01" + bytes(64), "only little-endian"),
    ],
    ids=["empty", "script", "short-ident", "elf32", "big-endian"],
)
def test_bad_files_raise_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ElfNoteError, match=message) as info:
        read_usdt_probes(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_truncated_binary_raises(tmp_path: Path) -> None:
    data = build_usdt_node().read_bytes()
    path = tmp_path / "truncated"
    path.write_bytes(data[: len(data) // 2])  # section headers sit at the end of the file
    with pytest.raises(ElfNoteError, match="truncated"):
        read_usdt_probes(path)


def test_corrupt_note_size_raises(tmp_path: Path) -> None:
    binary = build_usdt_node()
    notes = next(s for s in read_sections(binary) if s.name == ".note.stapsdt")
    data = bytearray(binary.read_bytes())
    # descsz of the first note claims far more than the section holds
    struct.pack_into("<I", data, notes.offset + 4, notes.size * 4)
    path = tmp_path / "corrupt"
    path.write_bytes(bytes(data))
    with pytest.raises(ElfNoteError, match="runs past"):
        read_usdt_probes(path)


@pytest.mark.parametrize(
    ("text", "expected", "ctype"),
    [
        ("-8@%rbx", ProbeArg(8, True, "%rbx"), "int64"),
        ("8@%r12", ProbeArg(8, False, "%r12"), "uint64"),
        ("-4@-20(%rbp)", ProbeArg(4, True, "-20(%rbp)"), "int32"),
        ("1@%sil", ProbeArg(1, False, "%sil"), "uint8"),
        ("-2@$-1", ProbeArg(2, True, "$-1"), "int16"),
        ("8f@%xmm0", ProbeArg(8, False, "%xmm0", is_float=True), "float64"),
        ("%rax", ProbeArg(0, False, "%rax"), "unknown"),
    ],
)
def test_probe_arg_parse(text: str, expected: ProbeArg, ctype: str) -> None:
    arg = ProbeArg.parse(text)
    assert arg == expected
    assert arg.ctype == ctype
