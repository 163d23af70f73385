"""Load one version set of the Cap'n Proto schemas in ``schemas/`` with pycapnp.

Why version sets: a client must use the ``.capnp`` files of the node it talks to. Init's
ordinals moved between releases (v30 ``makeMining @2``; v31 ``makeMiningOld2 @2``,
``makeMining @3``; master adds ``makeRpc @4``), and the proposed tracing interfaces
exist only on PR branches. ``schemas/README.md`` says where every file comes from.

Why one parser per set: the sets reuse the same file IDs (``init.capnp`` is
``@0xf2c5cfa319406aa6`` everywhere), and pycapnp's global parser (``capnp.load``)
rejects a second file with an ID it has already seen ("Duplicate ID"). A
``capnp.SchemaParser`` of our own per set keeps them apart, so one process can talk to a
v30 node and a proposed node at once.

pycapnp is untyped. The modules it returns are handed out as :data:`CapnpModule`
(``Any``) inside :class:`SchemaSet`; the small typed helpers below (ordinals, field
types, IDs) are what the rest of the bridge should use for introspection.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, get_args

__all__ = [
    "SCHEMA_DIR_ENV",
    "SET_FILES",
    "VERSIONS",
    "CapnpModule",
    "FieldInfo",
    "SchemaError",
    "SchemaSet",
    "Version",
    "capnp_include_dir",
    "field_info",
    "import_path",
    "interface_id",
    "load_schema_set",
    "method_ordinals",
    "schema_root",
    "set_dir",
]

Version: TypeAlias = Literal["v30", "v31", "master", "proposed"]
VERSIONS: Final[tuple[Version, ...]] = get_args(Version)
"""Every version set, oldest first. ``proposed`` is master plus the proposed interfaces."""

CapnpModule: TypeAlias = Any
"""A module returned by ``SchemaParser.load`` (untyped pycapnp)."""

SCHEMA_DIR_ENV: Final = "TRACEBRIDGE_IPC_SCHEMAS"
"""Environment variable naming the ``schemas/`` directory (default: the repository's)."""

# Files per set (without ".capnp"); mp/proxy.capnp is shared and loaded for every set.
_MERGED: Final = ("common", "echo", "init", "mining")
SET_FILES: Final[Mapping[Version, tuple[str, ...]]] = MappingProxyType(
    {
        "v30": _MERGED,
        "v31": _MERGED,
        "master": (*_MERGED, "rpc"),
        "proposed": (
            *_MERGED,
            "rpc",
            "handler",
            "tracing_utxo",
            "tracing_net",
            "chain",
            "node",
        ),
    }
)
"""The ``.capnp`` files of each set, by base name, all in ``schemas/<version>/``."""


class SchemaError(RuntimeError):
    """A schema set could not be found or did not parse."""


@dataclass(frozen=True)
class SchemaSet:
    """The loaded modules of one version set; absent files are None.

    Each attribute is the pycapnp module of the file of that name, e.g.
    ``s.init.Init`` (the interface), ``s.proxy.Context`` (a struct). ``tracing_utxo``
    is PR #32898's ``Tracing``/``UtxoCacheTrace``; ``tracing_net`` is the 0xB10C
    prototype's ``Tracing``/``NetMessageTrace``.
    """

    version: Version
    directory: Path
    proxy: CapnpModule
    init: CapnpModule
    mining: CapnpModule
    echo: CapnpModule
    common: CapnpModule
    rpc: CapnpModule | None = None
    handler: CapnpModule | None = None
    tracing_utxo: CapnpModule | None = None
    tracing_net: CapnpModule | None = None
    chain: CapnpModule | None = None
    node: CapnpModule | None = None
    parser: CapnpModule | None = None  # the set's own SchemaParser, for files of the bridge's

    def load_own(self, path: Path) -> CapnpModule:
        """Load a schema file of the bridge's that imports this set's files (by absolute
        import, e.g. "/tracing_net.capnp"), so its types are this set's types."""
        if self.parser is None:
            raise SchemaError("this schema set was loaded without its parser")
        return self.parser.load(str(path), imports=import_path(self.version, self.directory.parent))

    def require(self, name: str) -> CapnpModule:
        """Return the module ``name`` or raise SchemaError if this set lacks it."""
        module = getattr(self, name, None)
        if module is None:
            raise SchemaError(f"schema set {self.version!r} has no {name}.capnp")
        return module


def schema_root() -> Path:
    """The ``schemas/`` directory: ``$TRACEBRIDGE_IPC_SCHEMAS`` or the repository's."""
    env = os.environ.get(SCHEMA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    # bridge/sources/ipc/schemas.py -> repository root
    return Path(__file__).resolve().parents[3] / "schemas"


def set_dir(version: Version, root: Path | None = None) -> Path:
    """Directory of one version set."""
    if version not in VERSIONS:
        raise SchemaError(f"unknown schema version {version!r}; expected one of {VERSIONS}")
    return (root or schema_root()) / version


def capnp_include_dir() -> Path:
    """Directory holding ``capnp/c++.capnp``.

    As Bitcoin Core's test framework does: ``<prefix of the capnp binary>/include``
    (``/usr/include`` with Debian's libcapnp-dev), else pycapnp's bundled copy.
    """
    candidates: list[Path] = []
    binary = shutil.which("capnp")
    if binary is not None:
        candidates.append(Path(binary).resolve().parent.parent / "include")
    candidates.append(Path("/usr/include"))
    for candidate in candidates:
        if (candidate / "capnp" / "c++.capnp").is_file():
            return candidate
    import capnp  # local: only needed without a system Cap'n Proto

    bundled = Path(capnp.__path__[0]).parent
    if (bundled / "capnp" / "c++.capnp").is_file():
        return bundled
    raise SchemaError("capnp/c++.capnp not found (install libcapnp-dev or pycapnp)")


def import_path(version: Version, root: Path | None = None) -> list[str]:
    """The ``-I`` directories for a set, in the order the reference prescribes.

    The directory holding ``mp/proxy.capnp`` comes first, so an installed
    libmultiprocess cannot shadow it ("Duplicate ID @0xcc316e3f71a040fb"); then the
    Cap'n Proto include directory; then the set's own directory.
    """
    base = root or schema_root()
    return [str(base), str(capnp_include_dir()), str(set_dir(version, base))]


_cache: dict[tuple[Version, Path], SchemaSet] = {}
_lock = threading.Lock()


def load_schema_set(version: Version, root: Path | None = None) -> SchemaSet:
    """Parse (once per process) and return the schema set ``version``.

    Raises SchemaError if a file is missing or does not parse.
    """
    base = (root or schema_root()).resolve()
    key = (version, base)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        loaded = _load(version, base)
        _cache[key] = loaded
        return loaded


def _load(version: Version, base: Path) -> SchemaSet:
    import capnp

    directory = set_dir(version, base)
    imports = import_path(version, base)
    parser = capnp.SchemaParser()
    modules: dict[str, CapnpModule] = {}
    paths = [("proxy", base / "mp" / "proxy.capnp")]
    paths += [(name, directory / f"{name}.capnp") for name in SET_FILES[version]]
    for name, path in paths:
        if not path.is_file():
            raise SchemaError(f"schema file missing: {path}")
        try:
            modules[name] = parser.load(str(path), imports=imports)
        except Exception as exc:  # pycapnp raises KjException/IOError/ValueError
            raise SchemaError(f"cannot load {path}: {exc}") from exc
    return SchemaSet(version=version, directory=directory, parser=parser, **modules)


# --------------------------------------------------------------------------------------
# Typed introspection (so Any stays inside this module).
# --------------------------------------------------------------------------------------


def method_ordinals(interface: CapnpModule) -> dict[str, int]:
    """Method name -> ordinal of an interface module (e.g. ``s.init.Init``).

    Cap'n Proto stores methods in ordinal order, so the index is the ordinal.
    """
    methods = interface.schema.node.interface.methods
    return {str(m.name): index for index, m in enumerate(methods)}


def interface_id(interface: CapnpModule) -> int:
    """The 64-bit type ID of an interface: what a call names on the wire."""
    return int(interface.schema.node.id)


@dataclass(frozen=True)
class FieldInfo:
    """A struct field as declared: ordinal, type name (``uint32``, ``text``...), default.

    ``default`` is the Python value of an explicit scalar default, else None.
    """

    name: str
    ordinal: int
    type: str
    default: bool | int | float | None


def field_info(struct: CapnpModule) -> dict[str, FieldInfo]:
    """Field name -> FieldInfo of a struct module (e.g. ``s.tracing_net.NetMessage``)."""
    result: dict[str, FieldInfo] = {}
    for field in struct.schema.node.struct.fields:
        which = str(field.which())
        if which != "slot":
            raise SchemaError(f"{field.name} is a {which}, not a plain field")
        type_name = str(field.slot.type.which())
        default: bool | int | float | None = None
        if field.slot.hadExplicitDefault:
            value = getattr(field.slot.defaultValue, type_name, None)
            if isinstance(value, bool | int | float):
                default = value
        result[str(field.name)] = FieldInfo(
            name=str(field.name),
            ordinal=int(field.ordinal.explicit),
            type=type_name,
            default=default,
        )
    return result
