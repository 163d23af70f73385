"""Read the USDT probes of an ELF binary from its ``.note.stapsdt`` notes, in pure Python.

Why not ask BCC: listing probes must work without root, without BCC, and against a
``bitcoind`` that is not running (``bridge check`` compares a binary's probes with the
catalogue before anything attaches). The format is small and stable, so parsing it with
``struct`` is simpler than wrapping an untyped library.

Format (SystemTap wiki, "UserSpaceProbeImplementation", and ``<sys/sdt.h>``): every probe
site emits one ELF note into the non-allocated section ``.note.stapsdt``:

- note header ``namesz, descsz, type`` (3 x u32), owner ``"stapsdt\\0"``, type 3;
- desc: ``pc``, ``base``, ``semaphore`` (3 x 8 bytes on 64-bit targets), then the
  NUL-terminated ``provider``, ``name`` and argument string, e.g.
  ``"-8@%rdi 8@%rsi -4@-20(%rbp)"``: ``[-]size[f]@operand`` per argument, ``-`` for
  signed, ``f`` for floating point;
- ``base`` is the link-time address of the ``.stapsdt.base`` section. If the binary was
  later moved (prelink), the section's actual address differs and ``pc`` and
  ``semaphore`` must be shifted by ``actual - base``.

Only 64-bit little-endian ELF (x86-64, aarch64, riscv64 as Bitcoin Core ships them) is
supported; anything else raises :class:`ElfNoteError` rather than returning garbage.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "ElfNoteError",
    "ElfSection",
    "ProbeArg",
    "UsdtProbe",
    "read_sections",
    "read_usdt_probes",
    "section_containing",
    "semaphore_in_probes_section",
]

# ELF constants from the System V gABI (elf.h).
_ELF_MAGIC: Final = b"\x7fELF"
_ELFCLASS64: Final = 2
_ELFDATA2LSB: Final = 1
_SHT_NOBITS: Final = 8
_SHT_NOTE: Final = 7
_SHN_UNDEF: Final = 0
_SHN_XINDEX: Final = 0xFFFF  # the real e_shstrndx is in section 0's sh_link
_PN_XNUM: Final = 0xFFFF  # the real e_phnum is in section 0's sh_info
_PT_LOAD: Final = 1

# <sys/sdt.h>: _SDT_NOTE_NAME and _SDT_NOTE_TYPE.
_STAPSDT_OWNER: Final = b"stapsdt"
_NT_STAPSDT: Final = 3
_STAPSDT_BASE_SECTION: Final = ".stapsdt.base"
_STAPSDT_NOTE_SECTION: Final = ".note.stapsdt"
# Bitcoin Core's TRACEPOINT_SEMAPHORE puts every semaphore here (src/util/trace.h).
PROBES_SECTION: Final = ".probes"

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, 64 bytes
_SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr, 64 bytes
_PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr, 56 bytes
_NHDR = struct.Struct("<III")  # Elf64_Nhdr: namesz, descsz, type
_STAPSDT_DESC = struct.Struct("<QQQ")  # pc, base, semaphore

# "[-]size[f]@operand"; size is 1, 2, 4 or 8 in practice.
_ARG_RE: Final = re.compile(r"(-?)(\d+)(f?)@(.+)")


class ElfNoteError(ValueError):
    """The file is not a (supported) ELF file, or its headers or notes are truncated."""


@dataclass(frozen=True, slots=True)
class ProbeArg:
    """One probe argument as the compiler described it.

    ``size`` is the width in bytes (0 if the note gives none, as pre-2010 sdt.h did);
    ``signed`` is the leading ``-``; ``spec`` is the assembler operand where the value
    lives at the probe site (``%rdi``, ``-20(%rbp)``, ``$5``); ``is_float`` is the ``f``.
    """

    size: int
    signed: bool
    spec: str
    is_float: bool = False

    @classmethod
    def parse(cls, text: str) -> ProbeArg:
        """Parse one whitespace-free argument, e.g. ``"-8@%rbx"``."""
        m = _ARG_RE.fullmatch(text)
        if m is None:
            return cls(size=0, signed=False, spec=text)
        sign, size, flt, spec = m.groups()
        return cls(size=int(size), signed=sign == "-", spec=spec, is_float=flt == "f")

    @property
    def ctype(self) -> str:
        """The C type it implies: ``int64``, ``uint8`` (bool and char), ``float64``..."""
        if self.is_float:
            return f"float{8 * self.size}"
        if self.size == 0:
            return "unknown"
        return f"{'' if self.signed else 'u'}int{8 * self.size}"


@dataclass(frozen=True, slots=True)
class UsdtProbe:
    """One USDT probe site.

    ``pc`` and ``semaphore`` are virtual addresses already adjusted for the
    ``.stapsdt.base`` relocation; ``base`` is the value recorded in the note. ``pc_offset``
    and ``semaphore_offset`` are the matching file offsets, which is what the kernel's
    uprobe interface wants (uprobe offset, ``ref_ctr_offset``). ``semaphore`` and
    ``semaphore_offset`` are 0 for a probe without a semaphore. A probe inlined at several
    sites appears once per site.
    """

    provider: str
    name: str
    pc: int
    base: int
    semaphore: int
    args: tuple[ProbeArg, ...]
    pc_offset: int = 0
    semaphore_offset: int = 0

    @property
    def qualified_name(self) -> str:
        """``provider:name``, as BCC, bpftrace and Core's docs spell it."""
        return f"{self.provider}:{self.name}"


@dataclass(frozen=True, slots=True)
class ElfSection:
    """A section header: name, type (SHT_*), flags (SHF_*), address, file offset, size."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    addralign: int = 0

    def contains(self, address: int) -> bool:
        """Whether the virtual ``address`` lies in this section (only if it is mapped)."""
        return self.addr != 0 and self.addr <= address < self.addr + self.size


@dataclass(frozen=True, slots=True)
class _Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int


class _ElfImage:
    """Headers of one ELF64 little-endian file, bounds-checked against its length."""

    def __init__(self, path: Path, data: mmap.mmap | bytes) -> None:
        self.path = path
        self.data = data
        self.sections: list[ElfSection] = []
        self.segments: list[_Segment] = []
        self._parse()

    def _fail(self, what: str) -> ElfNoteError:
        return ElfNoteError(f"{self.path}: {what}")

    def _unpack(self, st: struct.Struct, offset: int, what: str) -> tuple[int, ...]:
        if offset < 0 or offset + st.size > len(self.data):
            raise self._fail(f"truncated: {what} at offset {offset} runs past the end of the file")
        values: tuple[int, ...] = st.unpack_from(self.data, offset)
        return values

    def _parse(self) -> None:
        head = bytes(self.data[:16])
        if len(head) < 4 or head[:4] != _ELF_MAGIC:
            raise self._fail("not an ELF file (bad magic)")
        if len(head) < 16:
            raise self._fail("truncated: ELF identification is incomplete")
        if head[4] != _ELFCLASS64:
            raise self._fail(f"unsupported ELF class {head[4]} (only 64-bit ELF is supported)")
        if head[5] != _ELFDATA2LSB:
            raise self._fail(f"unsupported ELF data encoding {head[5]} (only little-endian)")
        (_, _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = (
            self._unpack(_EHDR, 0, "ELF header")
        )
        if shoff == 0:
            return  # no section headers (fully stripped): no notes to read
        if shentsize != _SHDR.size:
            raise self._fail(f"unexpected section header size {shentsize}")
        first = self._unpack(_SHDR, shoff, "section header 0")
        if shnum == 0:
            shnum = first[5]  # sh_size of section 0 holds the real count
        if shstrndx == _SHN_XINDEX:
            shstrndx = first[6]
        if phnum == _PN_XNUM:
            phnum = first[7]
        raw = [
            self._unpack(_SHDR, shoff + i * shentsize, f"section header {i}") for i in range(shnum)
        ]
        strtab: tuple[int, ...] | None = None
        if shstrndx != _SHN_UNDEF:
            if shstrndx >= shnum:
                raise self._fail(f"section name table index {shstrndx} out of range")
            strtab = raw[shstrndx]
        for sh_name, sh_type, flags, addr, offset, size, _, _, addralign, _ in raw:
            name = ""
            if strtab is not None:
                name = self._cstr(strtab[4] + sh_name, strtab[4] + strtab[5])[0]
            if sh_type != _SHT_NOBITS and offset + size > len(self.data):
                raise self._fail(f"truncated: section {name!r} runs past the end of the file")
            self.sections.append(ElfSection(name, sh_type, flags, addr, offset, size, addralign))
        if phoff != 0 and phnum != 0:
            if phentsize != _PHDR.size:
                raise self._fail(f"unexpected program header size {phentsize}")
            for i in range(phnum):
                p_type, _, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = self._unpack(
                    _PHDR, phoff + i * phentsize, f"program header {i}"
                )
                if p_type == _PT_LOAD:
                    self.segments.append(_Segment(p_vaddr, p_offset, p_filesz, p_memsz))

    def _cstr(self, start: int, limit: int) -> tuple[str, int]:
        """Read a NUL-terminated string at ``start`` ending before ``limit``.

        Returns the text and the offset just past its NUL.
        """
        limit = min(limit, len(self.data))
        end = self.data.find(b"\0", start, limit) if start < limit else -1
        if end < 0:
            raise self._fail(f"truncated: unterminated string at offset {start}")
        return bytes(self.data[start:end]).decode("utf-8", errors="replace"), end + 1

    def section(self, name: str) -> ElfSection | None:
        return next((s for s in self.sections if s.name == name), None)

    def file_offset(self, address: int) -> int:
        """Map a virtual address to its file offset via the PT_LOAD segments (0 if none)."""
        for seg in self.segments:
            if seg.vaddr <= address < seg.vaddr + seg.filesz:
                return address - seg.vaddr + seg.offset
        for sec in self.sections:  # relocatable objects have no segments
            if sec.type != _SHT_NOBITS and sec.contains(address):
                return address - sec.addr + sec.offset
        return 0

    def usdt_probes(self) -> list[UsdtProbe]:
        base_section = self.section(_STAPSDT_BASE_SECTION)
        probes: list[UsdtProbe] = []
        for sec in self.sections:
            if sec.type == _SHT_NOTE and sec.name == _STAPSDT_NOTE_SECTION:
                probes.extend(self._notes(sec, base_section))
        return probes

    def _notes(self, sec: ElfSection, base_section: ElfSection | None) -> list[UsdtProbe]:
        # sdt.h emits 4-byte aligned notes (".balign 4") on every target; a section that
        # declares 8-byte alignment pads name and desc to 8 (readelf's rule, gABI ELF64).
        align = 8 if sec.addralign == 8 else 4
        pos, end = sec.offset, sec.offset + sec.size
        probes: list[UsdtProbe] = []
        while pos + _NHDR.size <= end:
            namesz, descsz, ntype = self._unpack(_NHDR, pos, "note header")
            name_at = pos + _NHDR.size
            desc_at = name_at + _round_up(namesz, align)
            next_at = desc_at + _round_up(descsz, align)
            if next_at > end:
                raise self._fail(f"truncated: note at offset {pos} runs past {sec.name}")
            owner = bytes(self.data[name_at : name_at + namesz]).rstrip(b"\0")
            if owner == _STAPSDT_OWNER and ntype == _NT_STAPSDT:
                probes.append(self._probe(desc_at, descsz, base_section))
            pos = next_at
        return probes

    def _probe(self, at: int, size: int, base_section: ElfSection | None) -> UsdtProbe:
        if size < _STAPSDT_DESC.size:
            raise self._fail(f"truncated: stapsdt note at offset {at} is only {size} bytes")
        pc, base, semaphore = self._unpack(_STAPSDT_DESC, at, "stapsdt note")
        limit = at + size
        pos = at + _STAPSDT_DESC.size
        provider, pos = self._cstr(pos, limit)
        name, pos = self._cstr(pos, limit)
        argstr, _ = self._cstr(pos, limit)
        if base_section is not None and base != 0:
            shift = base_section.addr - base
            pc += shift
            if semaphore != 0:
                semaphore += shift
        return UsdtProbe(
            provider=provider,
            name=name,
            pc=pc,
            base=base,
            semaphore=semaphore,
            args=tuple(ProbeArg.parse(a) for a in argstr.split()),
            pc_offset=self.file_offset(pc),
            semaphore_offset=self.file_offset(semaphore) if semaphore else 0,
        )


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) & ~(align - 1)


def _open(path: Path) -> tuple[_ElfImage, mmap.mmap]:
    with path.open("rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise ElfNoteError(f"{path}: not an ELF file (empty)")
        # mmap, not read(): a bitcoind with debug info is hundreds of MB, and only the
        # headers and the notes are touched.
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _ElfImage(path, mapped), mapped
    except BaseException:
        mapped.close()
        raise


def read_usdt_probes(path: Path) -> list[UsdtProbe]:
    """Return every USDT probe site in the binary at ``path``, in note order.

    Raises :class:`ElfNoteError` (a ``ValueError``) for a non-ELF, unsupported or
    truncated file, and ``OSError`` if it cannot be read. A binary without notes, or
    without section headers, gives ``[]``.
    """
    image, mapped = _open(path)
    try:
        return image.usdt_probes()
    finally:
        mapped.close()


def read_sections(path: Path) -> list[ElfSection]:
    """Return the section headers of the ELF file at ``path``, in header order."""
    image, mapped = _open(path)
    try:
        return list(image.sections)
    finally:
        mapped.close()


def section_containing(path: Path, address: int) -> ElfSection | None:
    """Return the mapped section holding virtual ``address``, or None."""
    return next((s for s in read_sections(path) if s.contains(address)), None)


def semaphore_in_probes_section(path: Path, probe: UsdtProbe) -> bool:
    """Whether ``probe`` has a semaphore and it lies in ``.probes``, as Core declares it."""
    if probe.semaphore == 0:
        return False
    sec = section_containing(path, probe.semaphore)
    return sec is not None and sec.name == PROBES_SECTION
