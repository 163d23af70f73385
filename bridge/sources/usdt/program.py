"""Assemble the BPF program text and compiler flags for a set of tracepoints.

BCC treats only functions defined in the main source text as BPF programs, so the
generated handlers (``bpf/include/tracebridge_probes.gen.h``) are inlined at their
``#include`` line here rather than included by the preprocessor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.events.bpf_header import enable_macro
from bridge.events.catalog import SUBSYSTEMS
from bridge.events.spec import EventSpec
from bridge.resources import bpf_dir

PROBES_INCLUDE = '#include "tracebridge_probes.gen.h"'

# A per-CPU array value may not exceed PCPU_MIN_UNIT_SIZE (32 KiB); bigger scratch
# records use one slot per CPU of a plain array instead.
PERCPU_VALUE_LIMIT = 32 * 1024
# Largest fixed part of any record, from the generated header (checked by a unit test).
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# Bitcoin Core's functional tests pass these to BCC (test_framework/util.py
# bpf_cflags()); the second works around bitcoin#32322.
BCC_CFLAGS = ("-Wno-error=implicit-function-declaration", "-Wno-duplicate-decl-specifier")


@dataclass(frozen=True)
class ProgramOptions:
    """What the BPF program is specialised for at compile time."""

    ring_kib: dict[str, int]
    payload_cap: int
    wakeup: str  # "timer" | "adaptive"

    @property
    def payload_mask(self) -> int:
        """Smallest 2**k - 1 >= payload_cap, so ``len & mask`` proves ``len <= mask``."""
        return (1 << self.payload_cap.bit_length()) - 1 if self.payload_cap else 0


def max_fixed_size() -> int:
    from bridge.events.catalog import EVENTS
    from bridge.events.layout import compute_layout

    return max(compute_layout(spec).fixed_size for spec in EVENTS)


def program_text() -> str:
    """The BPF C source with the generated handlers inlined."""
    main = (bpf_dir() / "tracebridge.bpf.c").read_text()
    probes = (bpf_dir() / "include" / "tracebridge_probes.gen.h").read_text()
    if PROBES_INCLUDE not in main:
        raise RuntimeError(f"bpf/tracebridge.bpf.c lost its `{PROBES_INCLUDE}` line")
    return main.replace(PROBES_INCLUDE, probes)


def compile_flags(specs: Iterable[EventSpec], options: ProgramOptions) -> list[str]:
    """``-D``/``-I`` flags: which handlers to build and how big everything is."""
    scratch = max_fixed_size() + options.payload_mask + 1
    flags = [f"-I{bpf_dir() / 'include'}", *BCC_CFLAGS]
    flags += [f"-D{enable_macro(spec)}" for spec in specs]
    for subsystem in SUBSYSTEMS:
        pages = max(1, options.ring_kib[subsystem] * 1024 // PAGE_SIZE)
        flags.append(f"-DTB_RING_PAGES_{subsystem.upper()}={pages}")
    flags += [
        f"-DTB_PAYLOAD_CAP={options.payload_cap}",
        f"-DTB_PAYLOAD_MASK={options.payload_mask}",
        f"-DTB_SCRATCH_PERCPU={int(scratch <= PERCPU_VALUE_LIMIT)}",
        f"-DTB_NR_CPUS={os.cpu_count() or 1}",
        f"-DTB_RB_FLAGS={'BPF_RB_NO_WAKEUP' if options.wakeup == 'timer' else 0}",
    ]
    return flags
