"""Where the non-Python parts of the project live at runtime.

The BPF sources and the committed Avro schemas sit at the repository's top level
(``bpf/``, ``avro/``) so a reader finds them by folder name. The package reads them from
there in a checkout (the supported way to run tracebridge: the README installs it
editable), and fails with a clear message if they are missing.
"""

from __future__ import annotations

from pathlib import Path

from bridge.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = _PACKAGE_DIR.parent


def _top_level(name: str) -> Path:
    path = REPO_ROOT / name
    if not path.is_dir():
        raise ConfigError(
            f"tracebridge needs its {name}/ directory next to the bridge package "
            f"(looked in {path}); run it from a checkout installed with `pip install -e .`"
        )
    return path


def bpf_dir() -> Path:
    """``bpf/``: the BPF program and its generated headers."""
    return _top_level("bpf")


def avro_dir() -> Path:
    """``avro/``: the committed Avro schemas, the contract consumers decode with."""
    return _top_level("avro")


RELEASED = "released"
"""``avro/released/<version>/``: frozen copies of earlier schema sets (see its README)."""


def current_schema_files(root: Path | None = None) -> list[Path]:
    """The current ``.avsc`` files under ``avro/`` (or ``root``): released sets excluded,
    since they are history, not what the bridge writes with."""
    base = root or avro_dir()
    return sorted(
        path for path in base.rglob("*.avsc") if path.relative_to(base).parts[0] != RELEASED
    )


def cache_dir() -> Path:
    """Build and download cache outside the repository (``TRACEBRIDGE_CACHE_DIR``)."""
    import os

    root = os.environ.get("TRACEBRIDGE_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "tracebridge"
