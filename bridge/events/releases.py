"""Released schema sets, and checking the current ``avro/`` schemas against them.

Where released sets live, and why there: ``avro/released/<version>/``, one copy of the
current schemas per release, written by ``tracebridge schemas release <version>`` as a
step of cutting a release and committed with it; next to the schemas they freeze, and
skipped by everything that loads the current ones (``bridge.resources.current_schema_files``).
A plain directory rather than git tags, because the check must work in a shallow CI
clone and in a source tarball, and because a reviewer sees the contract a release froze
in the diff that freezes it.

``--against`` also accepts a directory of ``.avsc`` files or ``git:<ref>`` (read with
``git show``), to compare with a branch or a tag without releasing anything.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.codec.single_object import fingerprint
from bridge.events.avro_schema import STABILITY_PROPERTY
from bridge.events.compat import Incompatibility, Level, check, level_for
from bridge.resources import RELEASED, REPO_ROOT, avro_dir, current_schema_files

RELEASED_DIR_NAME = RELEASED
MANIFEST = "RELEASE.json"
GIT_PREFIX = "git:"

# A release name is a version: it becomes a directory name and sorts numerically.
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")

# `git show` of a few dozen small files.
GIT_TIMEOUT_S = 30.0

Schemas = dict[str, dict[str, Any]]  # full name -> definition


def released_root() -> Path:
    """``avro/released/``."""
    return avro_dir() / RELEASED_DIR_NAME


def _full_name(definition: Mapping[str, Any]) -> str:
    return f"{definition['namespace']}.{definition['name']}"


def load_schema_dir(path: Path) -> Schemas:
    """Every ``*.avsc`` below ``path``, by record full name."""
    schemas: Schemas = {}
    for file in current_schema_files(path):
        definition = json.loads(file.read_text())
        schemas[_full_name(definition)] = definition
    return schemas


def current_schemas() -> Schemas:
    """The committed ``avro/`` schemas, the ones the bridge writes with."""
    return load_schema_dir(avro_dir())


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort 0.10.0 after 0.9.1: numeric parts as numbers, the rest as text."""
    parts = re.split(r"[.+-]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


@dataclass(frozen=True)
class SchemaSet:
    """One set of schemas to compare with: a release, a directory or a git ref."""

    label: str
    schemas: Schemas


def released_sets(root: Path | None = None) -> list[SchemaSet]:
    """Every released set under ``root`` (default ``avro/released/``), oldest first."""
    base = root or released_root()
    if not base.is_dir():
        return []
    versions = sorted((p.name for p in base.iterdir() if p.is_dir()), key=_version_key)
    return [SchemaSet(version, load_schema_dir(base / version)) for version in versions]


def resolve_against(spec: str, root: Path | None = None) -> SchemaSet:
    """``--against``: a released version, a directory of .avsc files, or ``git:<ref>``."""
    if spec.startswith(GIT_PREFIX):
        return SchemaSet(spec, schemas_at_git_ref(spec[len(GIT_PREFIX) :]))
    base = root or released_root()
    if (base / spec).is_dir() and _VERSION.match(spec):
        return SchemaSet(spec, load_schema_dir(base / spec))
    path = Path(spec)
    if path.is_dir():
        return SchemaSet(str(path), load_schema_dir(path))
    known = ", ".join(s.label for s in released_sets(base)) or "none yet"
    raise ValueError(
        f"--against {spec!r} is neither a released version (released: {known}), a directory "
        f"of .avsc files, nor git:<ref>"
    )


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ValueError(f"git {' '.join(args)} failed: {error}") from None
    if result.returncode != 0:
        raise ValueError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def schemas_at_git_ref(ref: str) -> Schemas:
    """The ``avro/`` schemas as committed at ``ref`` (a tag, branch or commit)."""
    listing = _git("ls-tree", "-r", "--name-only", ref, "--", "avro/")
    schemas: Schemas = {}
    for name in listing.splitlines():
        if name.endswith(".avsc"):
            definition = json.loads(_git("show", f"{ref}:{name}"))
            schemas[_full_name(definition)] = definition
    if not schemas:
        raise ValueError(f"no avro/*.avsc files at git ref {ref!r}")
    return schemas


def release(version: str, root: Path | None = None, source: Path | None = None) -> Path:
    """Freeze ``avro/`` as released set ``version``; refuse to overwrite one.

    A manifest records when, from which commit, and every schema's fingerprint, so a
    later reader can tell which bytes consumers were promised.
    """
    if not _VERSION.match(version):
        raise ValueError(f"release name {version!r} is not a version (e.g. 0.2.0)")
    base = root or released_root()
    target = base / version
    if target.exists():
        raise ValueError(f"released set {version} already exists at {target}; releases are final")
    src = source or avro_dir()
    files = current_schema_files(src)
    if not files:
        raise ValueError(f"no .avsc files under {src}")
    try:
        commit = _git("rev-parse", "HEAD").strip()
    except ValueError:
        commit = None
    partial = base / f".{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    fingerprints = {}
    for file in files:
        destination = partial / file.relative_to(src)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, destination)
        definition = json.loads(file.read_text())
        fingerprints[_full_name(definition)] = fingerprint(definition).hex()
    manifest = {
        "version": version,
        "released_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "fingerprints": dict(sorted(fingerprints.items())),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    partial.rename(target)
    return target


@dataclass(frozen=True)
class Verdict:
    """The outcome for one schema: the rule applied and what it found."""

    full_name: str
    stability: str
    level: Level
    status: str  # compatible | incompatible | new | unchecked | removed
    compared_with: tuple[str, ...]
    problems: tuple[Incompatibility, ...] = ()

    @property
    def fails(self) -> bool:
        """Whether this verdict breaks the stability policy's promise to consumers."""
        return self.status in ("incompatible", "removed")

    @property
    def blocking(self) -> bool:
        """Whether the check must fail: a stable schema changed incompatibly or vanished."""
        return self.fails and self.stability == "stable"


def evaluate(current: Schemas, history: Sequence[SchemaSet]) -> list[Verdict]:
    """Check every current schema against ``history`` (oldest first) under its stability's level.

    A schema's own tag decides the level; a schema that was released before but is gone
    now is reported as removed, with the level of its last released stability.
    """
    verdicts: list[Verdict] = []
    for name in sorted(current):
        definition = current[name]
        stability = str(definition.get(STABILITY_PROPERTY, "experimental"))
        level = level_for(stability)
        versions = [(s.label, s.schemas[name]) for s in history if name in s.schemas]
        if not versions:
            verdicts.append(Verdict(name, stability, level, "new", ()))
            continue
        considered = versions if level.transitive else versions[-1:]
        labels = tuple(label for label, _ in considered)
        if level is Level.NONE:
            verdicts.append(Verdict(name, stability, level, "unchecked", labels))
            continue
        problems = check(level, definition, versions)
        status = "incompatible" if problems else "compatible"
        verdicts.append(Verdict(name, stability, level, status, labels, tuple(problems)))
    if history:
        last = history[-1]
        for name in sorted(set(last.schemas) - set(current)):
            stability = str(last.schemas[name].get(STABILITY_PROPERTY, "experimental"))
            verdicts.append(
                Verdict(name, stability, level_for(stability), "removed", (last.label,))
            )
    return verdicts
