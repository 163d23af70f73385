"""Test fixtures: a real Kafka broker, the emulated node, and capability checks.

Markers become skips with a precise reason, one check per cause (Bitcoin Core's
skip_if_* habit), so a skipped test says what the machine lacks. `.ci/run` runs on a
machine where every check passes; there, nothing is skipped.

The broker is the project's own LocalBroker, started once per test session on free
ports in a temporary directory, unless TRACEBRIDGE_TEST_BOOTSTRAP names one to use.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# The gate (scripts/test, .ci/run) draws the same examples on every run, so a red CI
# always points at a change, not at the dice. Looking for new counterexamples is a
# separate, deliberate run: pytest --hypothesis-profile=explore tests/unit
# No deadline: an example that takes 200 ms on a loaded CI box is not a bug, and
# speed is measured by the benchmarks, not asserted by tests.
settings.register_profile("gate", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("explore", print_blob=True, deadline=None)
settings.load_profile("gate")

CLEANED_ENV_PREFIX = "TRACEBRIDGE_"
# Kept: where the tests' tools are, not how the bridge behaves. TRACEBRIDGE_BITCOIN_CORE
# is read again by code under test (bench realping looks the binaries up itself).
KEEP_ENV = {"TRACEBRIDGE_CACHE_DIR", "TRACEBRIDGE_TEST_BOOTSTRAP", "TRACEBRIDGE_BITCOIN_CORE"}

# Read at import: _clean_environment removes TRACEBRIDGE_* variables before each test, and
# this one is needed when the registry_url fixture first runs.
_GIVEN_REGISTRY = os.environ.get("TRACEBRIDGE_TEST_REGISTRY")


def _bpf_missing() -> str | None:
    from bridge.sources.usdt.privileges import effective_mask, missing_capabilities

    missing = missing_capabilities(effective_mask())
    if missing:
        return f"needs root or {', '.join(c.name for c in missing)} to load BPF programs"
    if importlib.util.find_spec("bcc") is None:
        return "needs Debian's python3-bpfcc in a --system-site-packages venv"
    if not Path(f"/lib/modules/{os.uname().release}/build").exists():
        return "needs kernel headers at /lib/modules/$(uname -r)/build (scripts/bootstrap)"
    if not Path("/sys/kernel/tracing/uprobe_events").exists():
        return "needs tracefs mounted at /sys/kernel/tracing (scripts/bootstrap)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _bpf_missing()
    if reason is None:
        return
    for item in items:
        if "bpf" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's TRACEBRIDGE_* settings must not change what a test sees."""
    for name in list(os.environ):
        if name.startswith(CLEANED_ENV_PREFIX) and name not in KEEP_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real broker for this test session."""
    given = os.environ.get("TRACEBRIDGE_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    from bridge.localkafka.broker import LocalBroker

    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), port=0)
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ccompat v7 URL of a real Apicurio registry for this test session (tests/registry,
    tests/jvm): the project's LocalRegistry on free ports, storage in memory, so every
    session starts with no subjects; or TRACEBRIDGE_TEST_REGISTRY's, if set."""
    if _GIVEN_REGISTRY:
        yield _GIVEN_REGISTRY.rstrip("/")
        return
    from bridge.localregistry.registry import LocalRegistry

    with LocalRegistry(tmp_path_factory.mktemp("registry"), port=0) as registry:
        yield registry.url


@pytest.fixture
def topic_prefix() -> str:
    """Topics of their own for every test, on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}"
