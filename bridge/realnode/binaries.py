"""Find the project's Bitcoin Core binaries and unpack them into the cache.

No Bitcoin Core binary comes from this project's package registries; ``shared/`` next
to the checkout holds a tarball of real ones (bitcoind, bitcoin-node, bitcoin-cli, built
with USDT, IPC and the wallet). They are unpacked once into
``<cache>/bitcoin-core/<tarball name>/`` (never into the repository), checked against
the tarball's sha256, and reused. ``TRACEBRIDGE_BITCOIN_CORE`` may name a directory of
binaries (your own build), another tarball, or a directory holding one (a copy of
``shared/bitcoin-core`` for a checkout that is not beside it).

Run ``python -m bridge.realnode.binaries`` to unpack ahead of time (scripts/bootstrap).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge.resources import REPO_ROOT, cache_dir

ENV = "TRACEBRIDGE_BITCOIN_CORE"
TARBALL_GLOB = "bitcoin-core-*.tar.gz"
BINARIES = ("bitcoind", "bitcoin-node", "bitcoin-cli")
# The sha256 the shared README publishes for the tarball the project was built against;
# another tarball is accepted (a newer build) but reported, never silently trusted.
KNOWN_SHA256 = {
    "bitcoin-core-d84fc352-debian12-x86_64.tar.gz": (
        "f7dcc11dca3a2c9b2c6d10a246f585d19bbd79e142e2021a4659d54a9f4bf870"
    ),
}


class BitcoinCoreMissing(RuntimeError):
    """No Bitcoin Core binaries could be found; the message says where we looked."""


@dataclass(frozen=True)
class CoreBinaries:
    """Paths of one Bitcoin Core build."""

    directory: Path

    @property
    def bitcoind(self) -> Path:
        return self.directory / "bitcoind"

    @property
    def bitcoin_node(self) -> Path:
        return self.directory / "bitcoin-node"

    @property
    def bitcoin_cli(self) -> Path:
        return self.directory / "bitcoin-cli"


def shared_dirs() -> list[Path]:
    """Where the shared tarball may be: ``shared/bitcoin-core`` beside the checkout (how
    sessions and CI lay it out) or inside it."""
    return [REPO_ROOT.parent / "shared" / "bitcoin-core", REPO_ROOT / "shared" / "bitcoin-core"]


def find_tarball() -> Path:
    """The tarball named by ``TRACEBRIDGE_BITCOIN_CORE`` (the file, or the newest one in
    that directory, such as a copy of ``shared/bitcoin-core``), else the shared one.
    A variable that is set is meant: it never falls back to the shared directories."""
    given = os.environ.get(ENV)
    if given and Path(given).is_file():
        return Path(given)
    looked = [Path(given)] if given else shared_dirs()
    for directory in looked:
        found = sorted(directory.glob(TARBALL_GLOB))
        if found:
            return found[-1]
    where = ", ".join(str(d) for d in looked)
    raise BitcoinCoreMissing(
        f"no bitcoind and no Bitcoin Core tarball ({TARBALL_GLOB}) in {where}; set {ENV} "
        "to a tarball, a directory holding one, or a directory holding bitcoind and "
        "bitcoin-node"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(tarball: Path, target: Path) -> None:
    """Unpack into a temporary sibling, then rename: a crash leaves no half directory."""
    expected = KNOWN_SHA256.get(tarball.name)
    actual = _sha256(tarball)
    if expected is not None and actual != expected:
        raise BitcoinCoreMissing(
            f"{tarball} has sha256 {actual}, not the published {expected}; refusing it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with tarfile.open(tarball) as archive:
            # Copied by hand, flat, whatever the tarball's layout: only the three regular
            # files are taken, so no path or link in the archive can point elsewhere.
            for member in archive.getmembers():
                name = Path(member.name).name
                source = archive.extractfile(member) if member.isfile() else None
                if name in BINARIES and source is not None:
                    with source, (staging / name).open("wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)
        missing = [name for name in BINARIES if not (staging / name).is_file()]
        if missing:
            raise BitcoinCoreMissing(f"{tarball} lacks {', '.join(missing)}")
        for name in BINARIES:
            (staging / name).chmod(0o755)
        (staging / "SHA256").write_text(actual + "\n")
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "bitcoind").is_file():  # not a concurrent unpack that won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_binaries() -> CoreBinaries:
    """The binaries to run, unpacking the shared tarball into the cache on first use."""
    given = os.environ.get(ENV)
    if given and (Path(given) / "bitcoind").is_file():  # a build of your own
        return CoreBinaries(Path(given).resolve())
    tarball = find_tarball()
    target = cache_dir() / "bitcoin-core" / tarball.name.removesuffix(".tar.gz")
    if not all((target / name).is_file() for name in BINARIES):
        _unpack(tarball, target)
    return CoreBinaries(target)


def main() -> None:
    binaries = ensure_binaries()
    print(binaries.directory)


if __name__ == "__main__":
    main()
