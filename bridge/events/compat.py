"""Avro schema compatibility, checked structurally from the Avro spec's resolution rules.

Why structural and not by sampling: a change is incompatible if *some* record cannot be
read, and random records rarely hit the one enum symbol or union branch that breaks. So
this module answers the question the spec answers ("Schema Resolution", Avro 1.11/1.12):
can a reader holding schema R read every datum written with schema W?

- Primitives: equal, or a promotion the spec allows (int -> long, float, double;
  long -> float, double; float -> double; string <-> bytes).
- Records: the same unqualified name (or a reader alias naming the writer); every reader
  field either exists in the writer (by name or reader field alias; its type resolved
  recursively) or has a default. Writer fields the reader lacks are skipped.
- Enums: the same name; a writer symbol the reader lacks needs the reader's enum default.
- Fixed: the same name and size. Arrays and maps: items and values recursively.
- Unions: every writer branch must be readable by the reader (by the first reader branch
  that can read it, when the reader is a union); a non-union writer must be readable by
  some reader branch.
- Named types are matched by name, references resolved with Avro's namespace rules, and
  recursive types terminate (a pair under comparison is assumed compatible, as the Java
  implementation's SchemaCompatibility does).

The levels are the Confluent ones that registries (Confluent, Apicurio's ccompat API)
enforce: BACKWARD = the new schema reads data written with the old; FORWARD = the old
reads the new; FULL = both; ``*_TRANSITIVE`` = against every earlier version rather than
the latest only; NONE = no check. The policy maps each stability tag to one level
(:data:`LEVEL_BY_STABILITY`), which the registry mode sets on every subject and
``tracebridge schemas compat`` checks against the released sets (see
:mod:`bridge.events.releases`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.events.spec import Stability


class Level(enum.StrEnum):
    """A compatibility level, spelled as registries spell it."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        """Whether every earlier version counts, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def checks_backward(self) -> bool:
        """Whether the new schema must read old data."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def checks_forward(self) -> bool:
        """Whether old schemas must read new data."""
        return self.value.startswith(("FORWARD", "FULL"))


# The README's stability policy as registry rules. Stable schemas promise readers in both
# directions across every release ("fields are only ever added, always with defaults");
# experimental ones follow Core's tracepoints, so only new readers must read old data;
# proposed and internal schemas promise nothing.
LEVEL_BY_STABILITY: Mapping[Stability, Level] = {
    Stability.STABLE: Level.FULL_TRANSITIVE,
    Stability.EXPERIMENTAL: Level.BACKWARD,
    Stability.PROPOSED: Level.NONE,
    Stability.INTERNAL: Level.NONE,
}


def level_for(stability: str) -> Level:
    """The level a schema's ``tracebridge.stability`` tag implies; unknown tags raise."""
    try:
        return LEVEL_BY_STABILITY[Stability(stability)]
    except ValueError:
        known = ", ".join(s.value for s in Stability)
        raise ValueError(f"unknown stability tag {stability!r} (known: {known})") from None


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader cannot read a writer's data.

    ``direction`` says which way failed ("backward": the new schema cannot read data
    written with ``against``; "forward": ``against`` cannot read the new schema's data),
    ``path`` where in the record, ``message`` why.
    """

    path: str
    message: str
    direction: str = ""
    against: str = ""

    def __str__(self) -> str:
        where = f"{self.direction} vs {self.against}: " if self.direction else ""
        return f"{where}{self.path}: {self.message}"


PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})

# Avro spec, "Schema Resolution": what a reader of each primitive type may also read.
READABLE_PROMOTIONS: Mapping[str, frozenset[str]] = {
    "long": frozenset({"int"}),
    "float": frozenset({"int", "long"}),
    "double": frozenset({"int", "long", "float"}),
    "bytes": frozenset({"string"}),
    "string": frozenset({"bytes"}),
}


@dataclass
class _Names:
    """The named types of one schema by full name, with the namespace each encloses."""

    types: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)

    def lookup(self, name: str, namespace: str) -> tuple[dict[str, Any], str] | None:
        if "." not in name and namespace and f"{namespace}.{name}" in self.types:
            return self.types[f"{namespace}.{name}"]
        return self.types.get(name)


def _full_name(node: Mapping[str, Any], namespace: str) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    space = node.get("namespace", namespace) or ""
    return f"{space}.{name}" if space else name


def _namespace_of(full_name: str) -> str:
    return full_name.rpartition(".")[0]


def _index(schema: Any, namespace: str, names: _Names) -> None:
    """Record every named type in ``schema`` under its full name."""
    if isinstance(schema, list):
        for branch in schema:
            _index(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if isinstance(kind, (dict, list)):
        _index(kind, namespace, names)
        return
    if kind in NAMED:
        full = _full_name(schema, namespace)
        inner = _namespace_of(full)
        names.types[full] = (schema, inner)
        for record_field in schema.get("fields", ()):
            _index(record_field["type"], inner, names)
    elif kind == "array":
        _index(schema["items"], namespace, names)
    elif kind == "map":
        _index(schema["values"], namespace, names)


@dataclass(frozen=True)
class _View:
    """A schema node with references resolved: its kind, body and enclosing namespace."""

    kind: str  # a primitive name, a NAMED kind, "array", "map" or "union"
    node: Any
    namespace: str
    full_name: str = ""

    def describe(self) -> str:
        return self.full_name or self.kind


def _view(schema: Any, namespace: str, names: _Names) -> _View:
    if isinstance(schema, list):
        return _View("union", schema, namespace)
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return _View(schema, schema, namespace)
        found = names.lookup(schema, namespace)
        if found is None:
            raise ValueError(f"unknown type {schema!r} (namespace {namespace!r})")
        node, inner = found
        return _View(str(node["type"]), node, inner, _full_name(node, inner))
    if isinstance(schema, dict):
        kind = schema["type"]
        if isinstance(kind, (dict, list)) or (
            isinstance(kind, str) and kind not in NAMED and kind not in ("array", "map")
        ):
            # {"type": "long", "logicalType": ...} or {"type": <nested schema>}: logical
            # types resolve by their underlying type, as in the spec.
            return _view(kind, namespace, names)
        if kind in NAMED:
            full = _full_name(schema, namespace)
            return _View(str(kind), schema, _namespace_of(full), full)
        return _View(str(kind), schema, namespace)
    raise ValueError(f"not an Avro schema: {schema!r}")


class _Checker:
    """Compares one reader schema with one writer schema."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader, self.writer = reader, writer
        self.reader_names, self.writer_names = _Names(), _Names()
        _index(reader, "", self.reader_names)
        _index(writer, "", self.writer_names)
        self._in_progress: set[tuple[str, str]] = set()

    def run(self) -> list[Incompatibility]:
        r = _view(self.reader, "", self.reader_names)
        w = _view(self.writer, "", self.writer_names)
        return self._compare(r, w, r.describe())

    def _compare(self, r: _View, w: _View, path: str) -> list[Incompatibility]:
        if w.kind == "union":
            problems: list[Incompatibility] = []
            for branch in w.node:
                wb = _view(branch, w.namespace, self.writer_names)
                problems.extend(self._compare(r, wb, path))
            return problems
        if r.kind == "union":
            for branch in r.node:
                rb = _view(branch, r.namespace, self.reader_names)
                if not self._compare(rb, w, path):
                    return []
            branches = ", ".join(
                _view(b, r.namespace, self.reader_names).describe() for b in r.node
            )
            return [
                Incompatibility(
                    path, f"the writer's {w.describe()} matches no branch of [{branches}]"
                )
            ]
        if r.kind in PRIMITIVES or w.kind in PRIMITIVES:
            if r.kind == w.kind or w.kind in READABLE_PROMOTIONS.get(r.kind, frozenset()):
                return []
            return [Incompatibility(path, f"{w.describe()} cannot be read as {r.describe()}")]
        if r.kind != w.kind:
            return [Incompatibility(path, f"{w.describe()} cannot be read as {r.describe()}")]
        if r.kind in ("array", "map"):
            key = "items" if r.kind == "array" else "values"
            return self._compare(
                _view(r.node[key], r.namespace, self.reader_names),
                _view(w.node[key], w.namespace, self.writer_names),
                f"{path}[]" if r.kind == "array" else f"{path}{{}}",
            )
        if not _names_match(r, w):
            return [
                Incompatibility(
                    path, f"named type {w.full_name} cannot be read as {r.full_name} (names differ)"
                )
            ]
        if r.kind == "fixed":
            if r.node["size"] != w.node["size"]:
                return [
                    Incompatibility(
                        path, f"fixed size changed from {w.node['size']} to {r.node['size']}"
                    )
                ]
            return []
        if r.kind == "enum":
            return self._compare_enums(r, w, path)
        return self._compare_records(r, w, path)

    def _compare_enums(self, r: _View, w: _View, path: str) -> list[Incompatibility]:
        missing = [s for s in w.node["symbols"] if s not in r.node["symbols"]]
        if missing and "default" not in r.node:
            return [
                Incompatibility(
                    path,
                    f"the reader's enum {r.full_name} lacks symbol(s) {', '.join(missing)} "
                    "and has no default",
                )
            ]
        return []

    def _compare_records(self, r: _View, w: _View, path: str) -> list[Incompatibility]:
        pair = (r.full_name, w.full_name)
        if pair in self._in_progress:
            return []  # a recursive reference: compatible unless proven otherwise elsewhere
        self._in_progress.add(pair)
        try:
            writer_fields = {f["name"]: f for f in w.node.get("fields", ())}
            problems: list[Incompatibility] = []
            for reader_field in r.node.get("fields", ()):
                name = reader_field["name"]
                here = f"{path}.{name}"
                written = writer_fields.get(name)
                if written is None:
                    for alias in reader_field.get("aliases", ()):
                        written = writer_fields.get(alias)
                        if written is not None:
                            break
                if written is None:
                    if "default" not in reader_field:
                        problems.append(
                            Incompatibility(
                                here,
                                "the reader's field is missing from the writer's schema and "
                                "has no default",
                            )
                        )
                    continue
                problems.extend(
                    self._compare(
                        _view(reader_field["type"], r.namespace, self.reader_names),
                        _view(written["type"], w.namespace, self.writer_names),
                        here,
                    )
                )
            return problems
        finally:
            self._in_progress.discard(pair)


def _names_match(r: _View, w: _View) -> bool:
    """The spec's rule: the same unqualified name, or a reader alias naming the writer."""
    if r.full_name.rpartition(".")[2] == w.full_name.rpartition(".")[2]:
        return True
    aliases = {_full_name({"name": a}, r.namespace) for a in r.node.get("aliases", ())}
    return w.full_name in aliases


def reader_problems(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer``; [] means it can."""
    return _Checker(reader, writer).run()


def can_read(reader: Any, writer: Any) -> bool:
    """Whether ``reader`` can read every datum written with ``writer``."""
    return not reader_problems(reader, writer)


def check(level: Level, new: Any, history: Sequence[tuple[str, Any]]) -> list[Incompatibility]:
    """Check ``new`` against earlier versions under ``level``; [] means compatible.

    ``history`` holds (label, schema) pairs, oldest first; the label (e.g. a release
    version) names the version in each problem. Non-transitive levels use the last only.
    """
    if level is Level.NONE or not history:
        return []
    against = history if level.transitive else history[-1:]
    problems: list[Incompatibility] = []
    for label, old in against:
        if level.checks_backward:
            problems.extend(
                Incompatibility(p.path, p.message, "backward", label)
                for p in reader_problems(new, old)
            )
        if level.checks_forward:
            problems.extend(
                Incompatibility(p.path, p.message, "forward", label)
                for p in reader_problems(old, new)
            )
    return problems
