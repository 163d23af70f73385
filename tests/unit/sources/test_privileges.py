"""The capability check: read from CapEff, and one message naming what is missing.

The set itself is verified where it matters, by running the bridge with exactly it
(tests/realnode/test_least_privilege.py); here the bits are checked against libcap's
own names (capsh), and the check against status texts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.errors import BpfLoadError
from bridge.sources.usdt.privileges import (
    USDT_CAPABILITIES,
    Capability,
    capability_mask,
    check_privileges,
    effective_mask,
    missing_capabilities,
)

# /proc/self/status of root on this project's machines: every capability but
# CAP_SYS_RESOURCE (bit 24), which the bridge does not need.
ROOT_HERE = "Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n"


def status_with(mask: int) -> str:
    return f"Name:\ttracebridge\nCapPrm:\t{mask:016x}\nCapEff:\t{mask:016x}\n"


def test_the_set_is_what_libcap_calls_it() -> None:
    capsh = shutil.which("capsh")
    if capsh is None:
        pytest.skip("needs capsh (libcap2-bin)")
    decoded = subprocess.run(
        [capsh, f"--decode={capability_mask():x}"], capture_output=True, text=True, check=True
    ).stdout
    names = decoded.strip().split("=", 1)[1].split(",")
    assert sorted(names) == sorted(c.name.lower() for c in USDT_CAPABILITIES)


def test_exactly_the_set_passes_and_root_passes() -> None:
    check_privileges(status_with(capability_mask()))
    check_privileges(ROOT_HERE)
    assert effective_mask(ROOT_HERE) == 0x1FFFEFFFFFF


@pytest.mark.parametrize("dropped", USDT_CAPABILITIES, ids=lambda c: c.name)
def test_one_missing_capability_is_named_with_its_reason(dropped: Capability) -> None:
    mask = capability_mask() & ~(1 << dropped.bit)
    with pytest.raises(BpfLoadError) as raised:
        check_privileges(status_with(mask))
    message = str(raised.value)
    assert message.startswith(f"USDT tracing lacks {dropped.name}: it needs {dropped.name} to ")
    assert dropped.why in message
    others = [c for c in USDT_CAPABILITIES if c is not dropped]
    assert all(f"{c.name} to" not in message for c in others)
    assert "\n" not in message


def test_nothing_granted_names_all_in_order() -> None:
    assert missing_capabilities(0) == list(USDT_CAPABILITIES)
    with pytest.raises(
        BpfLoadError, match="lacks CAP_BPF, CAP_PERFMON, CAP_DAC_OVERRIDE, CAP_SYS_PTRACE:"
    ):
        check_privileges(status_with(0))


def test_extra_capabilities_are_not_asked_about() -> None:
    assert missing_capabilities(capability_mask() | 1 << 21) == []


def test_a_status_without_capeff_is_one_clear_error() -> None:
    with pytest.raises(BpfLoadError, match="no CapEff"):
        check_privileges("Name:\tx\n")


def test_this_process_is_read_from_proc() -> None:
    text = Path("/proc/self/status").read_text()
    line = next(line for line in text.splitlines() if line.startswith("CapEff:"))
    assert effective_mask() == int(line.split()[1], 16)
