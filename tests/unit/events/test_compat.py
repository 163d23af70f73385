"""Structural Avro compatibility (bridge.events.compat) and the release check built on it.

The rule cases are hand-made old/new pairs (compat_cases.py), each stating which
direction must pass; tests/registry/test_compat_agreement.py puts the same pairs to
Apicurio. The committed schemas are checked against the released sets as the CLI does.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.cli.main import main
from bridge.events.compat import (
    LEVEL_BY_STABILITY,
    Level,
    can_read,
    check,
    level_for,
    reader_problems,
)
from bridge.events.releases import (
    current_schemas,
    evaluate,
    release,
    released_sets,
    resolve_against,
)
from bridge.events.spec import Stability
from bridge.resources import avro_dir
from tests.unit.events.compat_cases import CASES, Case, f, record


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_resolution_rules(case: Case) -> None:
    assert can_read(case.new, case.old) is case.backward
    assert can_read(case.old, case.new) is case.forward
    expected = {
        Level.BACKWARD: case.backward,
        Level.FORWARD: case.forward,
        Level.FULL: case.backward and case.forward,
        Level.NONE: True,
    }
    for level, compatible in expected.items():
        assert (check(level, case.new, [("old", case.old)]) == []) is compatible, level


def test_problems_name_the_field_and_the_reason() -> None:
    problems = reader_problems(record(f("a", "int"), f("b", "long")), record(f("a", "int")))
    assert len(problems) == 1
    assert problems[0].path == "t.compat.R.b"
    assert "no default" in problems[0].message
    (problem,) = check(Level.FORWARD, record(f("a", "long")), [("0.1.0", record(f("a", "int")))])
    assert str(problem).startswith("forward vs 0.1.0: t.compat.R.a:")
    assert "long cannot be read as int" in str(problem)


def test_transitive_levels_compare_with_every_version() -> None:
    v1 = record(f("a", "int"))
    v2 = record(f("a", "int"), f("b", "long", default=0))
    v3 = record(f("a", "int"), f("b", "long"))  # b lost its default: v1 data unreadable
    history = [("1", v1), ("2", v2)]
    assert check(Level.BACKWARD, v3, history) == []
    problems = check(Level.BACKWARD_TRANSITIVE, v3, history)
    assert [p.against for p in problems] == ["1"]
    assert check(Level.FULL_TRANSITIVE, v3, history) != []


def test_recursive_types_terminate() -> None:
    node: dict[str, Any] = {
        "type": "record",
        "name": "Node",
        "namespace": "t.compat",
        "fields": [f("v", "int"), f("next", ["null", "Node"], default=None)],
    }
    grown = copy.deepcopy(node)
    grown["fields"].append(f("w", "long", default=0))
    assert can_read(grown, node)
    assert can_read(node, grown)


def test_writer_union_needs_every_branch_readable() -> None:
    old = record(f("u", ["null", "string", "long"], default=None))
    new = record(f("u", ["null", "string"], default=None))
    problems = reader_problems(new, old)
    assert len(problems) == 1
    assert "long matches no branch" in problems[0].message


def test_stability_policy_levels() -> None:
    assert LEVEL_BY_STABILITY == {
        Stability.STABLE: Level.FULL_TRANSITIVE,
        Stability.EXPERIMENTAL: Level.BACKWARD,
        Stability.PROPOSED: Level.NONE,
        Stability.INTERNAL: Level.NONE,
    }
    assert level_for("stable") is Level.FULL_TRANSITIVE
    with pytest.raises(ValueError, match="unknown stability tag 'beta'"):
        level_for("beta")


# -- the real committed schemas -------------------------------------------------------


def test_committed_schemas_are_compatible_with_every_released_set() -> None:
    """What `tracebridge schemas compat` checks, and what must hold before a release."""
    history = released_sets()
    verdicts = evaluate(current_schemas(), history)
    blocking = [v for v in verdicts if v.blocking]
    assert blocking == [], "\n".join(
        f"{v.full_name}: {list(map(str, v.problems))}" for v in blocking
    )
    if history:
        stable = [v for v in verdicts if v.stability == "stable"]
        assert stable
        assert all(v.level is Level.FULL_TRANSITIVE for v in stable)
        assert all(v.status in ("compatible", "new") for v in stable)


def test_committed_schemas_are_compatible_with_themselves() -> None:
    for name, schema in current_schemas().items():
        assert can_read(schema, schema), name


# -- release sets and the CLI ---------------------------------------------------------


def _copy_avro(tmp_path: Path) -> Path:
    target = tmp_path / "old"
    shutil.copytree(avro_dir(), target, ignore=shutil.ignore_patterns("released"))
    return target


def _stable_file(root: Path) -> Path:
    for path in sorted(root.rglob("*.avsc")):
        if json.loads(path.read_text()).get("tracebridge.stability") == "stable":
            return path
    raise AssertionError("no stable schema committed")


def _edit(path: Path, change: Any) -> str:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))
    return f"{schema['namespace']}.{schema['name']}"


def test_release_freezes_avro_with_a_manifest(tmp_path: Path) -> None:
    root = tmp_path / "released"
    path = release("0.9.0", root=root)
    manifest = json.loads((path / "RELEASE.json").read_text())
    assert manifest["version"] == "0.9.0"
    assert set(manifest["fingerprints"]) == set(current_schemas())
    assert [s.label for s in released_sets(root)] == ["0.9.0"]
    with pytest.raises(ValueError, match="releases are final"):
        release("0.9.0", root=root)
    with pytest.raises(ValueError, match="not a version"):
        release("../escape", root=root)
    release("0.10.0", root=root)
    assert [s.label for s in released_sets(root)] == ["0.9.0", "0.10.0"]
    assert resolve_against("0.10.0", root).schemas == current_schemas()


def test_cli_compat_fails_when_a_stable_schema_breaks(tmp_path: Path) -> None:
    old = _copy_avro(tmp_path)
    # The old release had a field without a default that the current schema lacks: old
    # readers cannot read new data, which FULL_TRANSITIVE forbids.
    name = _edit(_stable_file(old), lambda s: s["fields"].append({"name": "gone", "type": "long"}))
    result = CliRunner().invoke(main, ["schemas", "compat", "--against", str(old)])
    assert result.exit_code == 1, result.output
    line = next(li for li in result.output.splitlines() if li.startswith(name))
    assert "stable" in line
    assert "FULL_TRANSITIVE" in line
    assert "incompatible" in line
    assert f"forward vs {old}: {name}.gone" in result.output
    assert "FAILED" in result.output


def test_cli_compat_reports_experimental_breaks_without_failing(tmp_path: Path) -> None:
    old = _copy_avro(tmp_path)
    experimental = next(
        p
        for p in sorted(old.rglob("*.avsc"))
        if json.loads(p.read_text()).get("tracebridge.stability") == "experimental"
    )

    # Old data had a field of a type nothing reads as anything else: the new schema
    # cannot read it (BACKWARD).
    def retype(schema: dict[str, Any]) -> None:
        schema["fields"][-1]["type"] = {"type": "fixed", "name": "Retyped", "size": 3}
        schema["fields"][-1].pop("default", None)

    name = _edit(experimental, retype)
    runner = CliRunner()
    result = runner.invoke(main, ["schemas", "compat", "--against", str(old)])
    assert result.exit_code == 0, result.output
    line = next(li for li in result.output.splitlines() if li.startswith(name))
    assert "BACKWARD" in line
    assert "incompatible (policy allows it)" in line
    strict = runner.invoke(main, ["schemas", "compat", "--strict", "--against", str(old)])
    assert strict.exit_code == 1


def test_cli_compat_passes_on_the_committed_schemas() -> None:
    result = CliRunner().invoke(main, ["schemas", "compat"])
    assert result.exit_code == 0, result.output


def test_cli_schemas_still_lists_the_table() -> None:
    result = CliRunner().invoke(main, ["schemas", "--markdown"])
    assert result.exit_code == 0
    assert result.output.startswith("| tracepoint | topic | Avro record | stability |")


def test_cli_compat_rejects_an_unknown_against() -> None:
    result = CliRunner().invoke(main, ["schemas", "compat", "--against", "no-such-thing"])
    assert result.exit_code == 2
    assert "neither a released version" in result.output
