"""Write (or check) every file generated from the catalogue and the config models.

``tracebridge gen`` writes them; ``tracebridge gen --check`` (and the unit test
``tests/unit/events/test_codegen.py``) fails when a committed file differs from what
the catalogue generates, which is what stops the BPF structs and Avro schemas from
drifting away from ``catalog.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bridge.events.avro_schema import schema_files
from bridge.events.bpf_header import events_header, probes_header
from bridge.resources import REPO_ROOT, avro_dir, bpf_dir, current_schema_files


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    content: str


def docs_root() -> Path:
    """Where README.md and deploy/ live (a function, so tests can point it elsewhere)."""
    return REPO_ROOT


def render_schema(schema: object) -> str:
    """Stable JSON text for a committed ``.avsc`` file."""
    return json.dumps(schema, indent=2) + "\n"


def generated_files() -> list[GeneratedFile]:
    """Everything derived from the catalogue (and the config models), with its destination."""
    from bridge.docs import example_config, render_readme

    readme = docs_root() / "README.md"
    files = [
        GeneratedFile(readme, render_readme(readme.read_text())),
        GeneratedFile(docs_root() / "deploy" / "tracebridge.example.toml", example_config()),
        GeneratedFile(bpf_dir() / "include" / "tracebridge_events.gen.h", events_header()),
        GeneratedFile(bpf_dir() / "include" / "tracebridge_probes.gen.h", probes_header()),
    ]
    for relative, schema in sorted(schema_files().items()):
        files.append(GeneratedFile(avro_dir() / relative, render_schema(schema)))
    return files


def stale_files() -> list[Path]:
    """Generated files whose committed content differs (or that are missing)."""
    stale = []
    for generated in generated_files():
        try:
            current = generated.path.read_text()
        except FileNotFoundError:
            current = None
        if current != generated.content:
            stale.append(generated.path)
    return stale


def orphan_schemas() -> list[Path]:
    """``.avsc`` files under ``avro/`` that the catalogue no longer generates."""
    expected = {g.path for g in generated_files()}
    return [p for p in current_schema_files(avro_dir()) if p not in expected]


def write_all() -> list[Path]:
    """Write every generated file; return the ones that changed."""
    changed = []
    for generated in generated_files():
        generated.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if generated.path.read_text() == generated.content:
                continue
        except FileNotFoundError:
            pass
        generated.path.write_text(generated.content)
        changed.append(generated.path)
    return changed
