"""Our structural verdicts agree with the registry's own compatibility checks.

The same hand-made pairs as the unit tests (tests/unit/events/compat_cases.py) go to
Apicurio: each old schema is registered under a subject of its own with the level under
test, then the new one is put to ``POST /compatibility/subjects/{s}/versions/latest``.
A disagreement would mean the registry refuses (or accepts) at bridge start what
``tracebridge schemas compat`` accepted (or refused).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from bridge.events.compat import Level, check
from tests.unit.events.compat_cases import CASES, Case, f, record

pytestmark = pytest.mark.registry

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
LEVELS = (Level.BACKWARD, Level.FORWARD, Level.FULL)


def _call(method: str, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": CONTENT_TYPE},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _subject(registry_url: str, level: Level, *versions: dict[str, Any]) -> str:
    """A fresh subject at ``level`` holding ``versions`` (registered under NONE first)."""
    subject = f"agreement-{uuid.uuid4().hex[:12]}"
    base = f"{registry_url}/config/{subject}"
    assert _call("PUT", base, {"compatibility": "NONE"})[0] == 200
    for schema in versions:
        status, answer = _call(
            "POST", f"{registry_url}/subjects/{subject}/versions", {"schema": json.dumps(schema)}
        )
        assert status == 200, answer
    assert _call("PUT", base, {"compatibility": level.value})[0] == 200
    return subject


def _registry_says(registry_url: str, subject: str, new: dict[str, Any], path: str) -> bool:
    status, answer = _call(
        "POST",
        f"{registry_url}/compatibility/subjects/{subject}/{path}",
        {"schema": json.dumps(new)},
    )
    assert status == 200, answer
    return bool(answer["is_compatible"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_verdicts_agree_with_apicurio(registry_url: str, case: Case) -> None:
    for level in LEVELS:
        subject = _subject(registry_url, level, case.old)
        ours = check(level, case.new, [("old", case.old)]) == []
        theirs = _registry_says(registry_url, subject, case.new, "versions/latest")
        assert ours == theirs, f"{case.id} under {level}: ours {ours}, Apicurio {theirs}"


def test_transitive_verdict_agrees_when_registering(registry_url: str) -> None:
    """Transitive levels: the registry's verdict is whether it accepts a registration."""
    v1 = record(f("a", "int"))
    v2 = record(f("a", "int"), f("b", "long", default=0))
    v3 = record(f("a", "int"), f("b", "long"))
    history = [("1", v1), ("2", v2)]
    for level in (Level.BACKWARD, Level.BACKWARD_TRANSITIVE):
        subject = _subject(registry_url, level, v1, v2)
        status, _ = _call(
            "POST", f"{registry_url}/subjects/{subject}/versions", {"schema": json.dumps(v3)}
        )
        ours = check(level, v3, history) == []
        assert ours == (status == 200), f"{level}: ours {ours}, Apicurio HTTP {status}"
