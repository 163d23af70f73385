"""Record layouts: the generated C structs (compiled with gcc, not BPF) and the Python
``struct`` formats must put every field at the offsets ``compute_layout`` says.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bridge.events.catalog import BY_NAME, EVENTS
from bridge.events.layout import (
    HEADER,
    HEADER_SIZE,
    Padding,
    RecordFlag,
    RecordLayout,
    Slot,
    compute_layout,
    struct_format,
)
from bridge.events.spec import EventSpec, FieldSpec, Kind, Stability
from bridge.resources import bpf_dir
from bridge.sources.usdt.program import max_fixed_size

LAYOUTS = [compute_layout(spec) for spec in EVENTS]

# Width of each scalar kind in bytes (C99 fixed-width types).
SCALAR_WIDTH = {Kind.I32: 4, Kind.U32: 4, Kind.I64: 8, Kind.U64: 8, Kind.BOOL: 1}


def member(slot: Slot) -> str:
    return slot.field.name + ("_len" if slot.field.kind is Kind.PAYLOAD else "")


def c_program(layouts: list[RecordLayout]) -> str:
    lines = [
        "#include <linux/types.h>",
        "#include <stddef.h>",
        "#include <stdio.h>",
        '#include "tracebridge_events.gen.h"',
        "#define SZ(T, M) sizeof(((struct T *)0)->M)",
        '#define SHOW(T, M) printf(#T " " #M " %zu %zu\\n", offsetof(struct T, M), SZ(T, M))',
        "int main(void) {",
        '    printf("tb_header - 0 %zu\\n", sizeof(struct tb_header));',
    ]
    for name in ("seq", "ktime_ns", "lost_before", "tp_id", "flags", "reserved"):
        lines.append(f"    SHOW(tb_header, {name});")
    lines.append('    printf("flag READ_ERROR %d 0\\n", TB_FLAG_READ_ERROR);')
    lines.append('    printf("flag PAYLOAD_TRUNCATED %d 0\\n", TB_FLAG_PAYLOAD_TRUNCATED);')
    lines.append('    printf("define TB_HEADER_SIZE %d 0\\n", TB_HEADER_SIZE);')
    lines.append('    printf("define TB_MAX_FIXED_SIZE %d 0\\n", TB_MAX_FIXED_SIZE);')
    lines.append('    printf("define TB_MAX_TP_ID %d 0\\n", TB_MAX_TP_ID);')
    for layout in layouts:
        name = layout.struct_name
        lines.append(f'    printf("{name} - 0 %zu\\n", sizeof(struct {name}));')
        lines.append(f"    SHOW({name}, hdr);")
        tp = f"TB_TP_{layout.spec.ident.upper()}"
        lines.append(f'    printf("tp {name} %d 0\\n", {tp});')
        for slot in layout.slots:
            lines.append(f"    SHOW({name}, {member(slot)});")
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[int, int]]:
    """(struct or kind, member) -> (offset, size) as gcc lays them out."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc")
    work = tmp_path_factory.mktemp("layout")
    source = work / "layout.c"
    source.write_text(c_program(LAYOUTS))
    exe = work / "layout"
    include = bpf_dir() / "include"
    build = subprocess.run(
        [gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(include), "-o", str(exe),
         str(source)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for line in run.stdout.splitlines():
        where, what, first, second = line.split()
        out[(where, what)] = (int(first), int(second))
    return out


def test_header_struct(compiled: dict[tuple[str, str], tuple[int, int]]) -> None:
    assert compiled[("tb_header", "-")] == (0, 32)
    assert HEADER_SIZE == 32
    assert HEADER.size == 32
    expected = {
        "seq": (0, 8),
        "ktime_ns": (8, 8),
        "lost_before": (16, 8),
        "tp_id": (24, 2),
        "flags": (26, 2),
        "reserved": (28, 4),
    }
    for name, where in expected.items():
        assert compiled[("tb_header", name)] == where, name


def test_defines(compiled: dict[tuple[str, str], tuple[int, int]]) -> None:
    assert compiled[("flag", "READ_ERROR")][0] == int(RecordFlag.READ_ERROR) == 1
    assert compiled[("flag", "PAYLOAD_TRUNCATED")][0] == int(RecordFlag.PAYLOAD_TRUNCATED) == 2
    assert compiled[("define", "TB_HEADER_SIZE")][0] == 32
    assert compiled[("define", "TB_MAX_FIXED_SIZE")][0] == max_fixed_size()
    assert compiled[("define", "TB_MAX_FIXED_SIZE")][0] == max(
        size
        for (where, what), (_, size) in compiled.items()
        if what == "-" and where != "tb_header"
    )
    assert compiled[("define", "TB_MAX_TP_ID")][0] == max(spec.tp_id for spec in EVENTS)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.spec.name)
def test_c_struct_matches_layout(
    compiled: dict[tuple[str, str], tuple[int, int]], layout: RecordLayout
) -> None:
    name = layout.struct_name
    assert compiled[(name, "-")] == (0, layout.fixed_size)
    assert compiled[(name, "hdr")] == (0, HEADER_SIZE)
    assert compiled[("tp", name)][0] == layout.spec.tp_id
    for slot in layout.slots:
        assert compiled[(name, member(slot))] == (slot.offset, slot.size), member(slot)


# ------------------------------------------------------------------ layout properties


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.spec.name)
def test_layout_properties(layout: RecordLayout) -> None:
    assert layout.fixed_size % 8 == 0
    # Members tile [32, fixed_size) exactly, in order, without overlap.
    position = HEADER_SIZE
    for m in layout.members:
        assert m.offset == position
        assert m.size > 0
        position += m.size
    assert position == layout.fixed_size
    # Padding is only what alignment needs: never 8 bytes or more.
    assert all(m.size < 8 for m in layout.members if isinstance(m, Padding))
    # Every field has exactly one slot, of its storage size, naturally aligned.
    assert sorted(s.field.name for s in layout.slots) == sorted(f.name for f in layout.spec.fields)
    for slot in layout.slots:
        kind = slot.field.kind
        if kind in SCALAR_WIDTH:
            assert slot.size == SCALAR_WIDTH[kind]
            assert slot.offset % slot.size == 0
        elif kind is Kind.HASH32:
            assert slot.size == 32
        elif kind is Kind.CSTR:
            assert slot.field.max_len is not None
            assert slot.size == slot.field.max_len + 1
        else:
            assert slot.size == 4
            assert slot.offset % 4 == 0
            assert layout.payload_slot is slot


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.spec.name)
def test_struct_format_size(layout: RecordLayout) -> None:
    fmt = struct_format(layout)
    assert struct.calcsize(fmt) == layout.fixed_size
    assert fmt.startswith("<")  # little-endian, no native alignment
    # One item per header field and per slot.
    assert len(struct.unpack(fmt, bytes(layout.fixed_size))) == 6 + len(layout.slots)


def test_hand_computed_layouts() -> None:
    """Two layouts worked out by hand from the rules in layout.py's docstring."""
    added = compute_layout(BY_NAME["mempool:added"])
    assert [(s.field.name, s.offset, s.size) for s in added.slots] == [
        ("fee", 32, 8),
        ("vsize", 40, 4),
        ("txid", 44, 32),
    ]
    assert added.fixed_size == 80
    message = compute_layout(BY_NAME["net:inbound_message"])
    assert [(s.field.name, s.offset, s.size) for s in message.slots] == [
        ("peer_id", 32, 8),
        ("msg_size", 40, 8),
        ("msg", 48, 4),
        ("peer_addr", 52, 69),
        ("conn_type", 121, 21),
        ("msg_type", 142, 21),
    ]
    assert message.fixed_size == 168
    assert message.payload_slot is message.slot("msg")
    utxo = compute_layout(BY_NAME["utxocache:add"])
    assert [(s.field.name, s.offset) for s in utxo.slots] == [
        ("value", 32),
        ("index", 40),
        ("height", 44),
        ("txid", 48),
        ("is_coinbase", 80),
    ]
    assert utxo.fixed_size == 88
    assert utxo.members[-1] == Padding(81, 7)


def test_struct_format_decodes_hand_packed_bytes() -> None:
    layout = compute_layout(BY_NAME["mempool:added"])
    txid = bytes(range(32))
    raw = struct.pack("<QQQHHI", 7, 8, 9, 13, 0, 0) + struct.pack("<qi32s4x", -5, 250, txid)
    assert struct.unpack(struct_format(layout), raw) == (7, 8, 9, 13, 0, 0, -5, 250, txid)


def test_layout_is_stable_and_alignment_never_needs_implicit_padding() -> None:
    """A made-up event mixing every shape: compute twice, same answer; gcc agrees."""
    spec = EventSpec(
        tp_id=1,
        subsystem="net",
        event="mixed",
        stability=Stability.PROPOSED,
        doc="test",
        fields=(
            FieldSpec("flag", Kind.BOOL, "b"),
            FieldSpec("name", Kind.CSTR, "s", max_len=2),
            FieldSpec("small", Kind.U32, "u"),
            FieldSpec("hash", Kind.HASH32, "h"),
            FieldSpec("big", Kind.I64, "i"),
        ),
    )
    layout = compute_layout(spec)
    assert layout == compute_layout(spec)
    assert [(s.field.name, s.offset) for s in layout.slots] == [
        ("big", 32),
        ("small", 40),
        ("hash", 44),
        ("flag", 76),
        ("name", 77),
    ]
    assert layout.fixed_size == 80
    assert not any(isinstance(m, Padding) for m in layout.members)


def test_the_committed_header_asserts_every_offset() -> None:
    header = (bpf_dir() / "include" / "tracebridge_events.gen.h").read_text()
    asserts = re.findall(r"__builtin_offsetof\(struct (\w+), (\w+)\) == (\d+)", header)
    expected = {
        (layout.struct_name, member(slot), str(slot.offset))
        for layout in LAYOUTS
        for slot in layout.slots
    }
    assert set(asserts) == expected


def test_gcc_rejects_a_header_whose_offsets_are_wrong(tmp_path: Path) -> None:
    """The _Static_asserts are what make a C/Python disagreement a compile error."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc")
    header = (bpf_dir() / "include" / "tracebridge_events.gen.h").read_text()
    broken = header.replace("__s32 vsize;", "__s64 vsize;", 1)
    assert broken != header
    (tmp_path / "tracebridge_events.gen.h").write_text(broken)
    source = tmp_path / "t.c"
    source.write_text('#include <linux/types.h>\n#include "tracebridge_events.gen.h"\n')
    result = subprocess.run(
        [gcc, "-std=c11", "-fsyntax-only", "-I", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "offset differs" in result.stderr or "size differs" in result.stderr
