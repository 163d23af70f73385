"""The real schema registry for tests/registry: the project's own LocalRegistry.

One Apicurio JVM per test session (a start costs ~3.5 s on 2 cores), on free ports in a
temporary directory, like the broker of tests/conftest.py; its storage is in memory, so
every session starts with no subjects. Tests keep out of each other's way by using
topic prefixes of their own (``topic_prefix``), which are part of every subject name.

Set ``TRACEBRIDGE_TEST_REGISTRY`` to the Confluent-compatible URL of a registry that is
already running (e.g. http://127.0.0.1:18081/apis/ccompat/v7) to use it instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Read at import: the autouse _clean_environment fixture removes TRACEBRIDGE_* variables
# before each test, and this one is needed when the session fixture first runs.
_GIVEN_REGISTRY = os.environ.get("TRACEBRIDGE_TEST_REGISTRY")


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ccompat v7 URL of a real Apicurio registry for this test session."""
    if _GIVEN_REGISTRY:
        yield _GIVEN_REGISTRY.rstrip("/")
        return
    from bridge.localregistry.registry import LocalRegistry

    with LocalRegistry(tmp_path_factory.mktemp("registry"), port=0) as registry:
        yield registry.url
