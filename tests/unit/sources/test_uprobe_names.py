"""Uprobe names fit tracefs, whatever the node binary's path."""

from __future__ import annotations

import importlib.util

import pytest

from bridge.sources.usdt.loaded_program import UPROBE_NAME_BUDGET, uprobe_event_name

LONG_PATH = b"/proc/4194304/root/home/bitcoin/downloads/bitcoin-31.0-x86_64-linux-gnu/bin/bitcoind"


def test_a_long_path_still_fits_the_kernel_limit() -> None:
    name = uprobe_event_name(b"p", LONG_PATH, 0xFFFFFFFFFF, 4194304)
    assert len(name) <= UPROBE_NAME_BUDGET
    assert len(name + b"_bcc_4194304") <= 64


def test_names_are_distinct_per_binary_probe_and_process() -> None:
    base = uprobe_event_name(b"p", LONG_PATH, 0x1B2C3D, 42)
    assert uprobe_event_name(b"p", LONG_PATH, 0x1B2C3D, 42) == base
    others = {
        uprobe_event_name(b"p", LONG_PATH + b"-qt", 0x1B2C3D, 42),
        uprobe_event_name(b"p", LONG_PATH, 0x1B2C3E, 42),
        uprobe_event_name(b"p", LONG_PATH, 0x1B2C3D, 43),
        uprobe_event_name(b"r", LONG_PATH, 0x1B2C3D, 42),
    }
    assert base not in others
    assert len(others) == 4


def test_names_are_tracefs_identifiers() -> None:
    name = uprobe_event_name(b"p", LONG_PATH, 0x1B2C3D, 42)
    assert name.replace(b"_", b"").isalnum()


@pytest.mark.skipif(importlib.util.find_spec("bcc") is None, reason="BCC is not installed")
def test_bcc_still_names_uprobes_through_the_hook_we_replace() -> None:
    """A BCC that renamed the method would silently bring back path-long names."""
    import bcc

    assert callable(bcc.BPF._get_uprobe_evname)
