"""The systemd unit and the compose file grant exactly USDT_CAPABILITIES, to a non-root user.

One constant (bridge/sources/usdt/privileges.py) says which capabilities USDT tracing
needs; tests/realnode/test_least_privilege.py runs the bridge with exactly it against a
real node. Here the two ways of deploying it are held to the same set, so a capability
added to or dropped from the code without the deployment (or the other way round) fails.
"""

from __future__ import annotations

import pytest

from bridge.sources.usdt.privileges import USDT_CAPABILITIES, setpriv_prefix
from tests.deploy.test_compose import _unit, compose_config, needs_compose, parse_cli

NAMES = {c.name for c in USDT_CAPABILITIES}
# What setpriv itself needs to switch user and shrink the bounding set; it drops them
# before tracebridge starts (tests/realnode runs the same setpriv_prefix()).
SETPRIV_ONLY = {"SETUID", "SETGID", "SETPCAP"}


def test_systemd_unit_grants_exactly_the_set_to_a_non_root_user() -> None:
    service = _unit()["Service"]
    assert service["User"] not in ("", "root", "0")
    assert service.get("Group", "") not in ("root", "0")
    assert set(service["AmbientCapabilities"].split()) == NAMES
    assert set(service["CapabilityBoundingSet"].split()) == NAMES
    assert service["NoNewPrivileges"] == "yes"


@needs_compose
def test_compose_bridge_runs_tracebridge_as_nobody_with_exactly_the_set() -> None:
    bridge = compose_config()["services"]["bridge"]
    assert bridge["cap_drop"] == ["ALL"]
    assert set(bridge["cap_add"]) == {c.short_name for c in USDT_CAPABILITIES} | SETPRIV_ONLY
    assert "no-new-privileges:true" in bridge["security_opt"]
    # setpriv leaves tracebridge as nobody with exactly the set: the same prefix the
    # real-node test runs the bridge under.
    prefix = setpriv_prefix()
    entrypoint = bridge["entrypoint"]
    assert entrypoint == [*prefix, "tracebridge"]
    assert "--reuid=65534" in prefix
    command, _ = parse_cli(bridge["command"])
    assert command.name == "run"


@pytest.mark.parametrize("flag", ["--inh-caps", "--ambient-caps", "--bounding-set"])
def test_setpriv_prefix_keeps_only_the_set(flag: str) -> None:
    (value,) = [a.split("=", 1)[1] for a in setpriv_prefix() if a.startswith(flag + "=")]
    first, *granted = value.split(",")
    assert first == "-all"
    assert {g.removeprefix("+").upper() for g in granted} == {
        c.short_name for c in USDT_CAPABILITIES
    }
