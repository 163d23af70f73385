"""Where the real-node tier finds Bitcoin Core: TRACEBRIDGE_BITCOIN_CORE's three forms."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from bridge.realnode.binaries import BINARIES, ENV, BitcoinCoreMissing, ensure_binaries


def fake_tarball(directory: Path) -> Path:
    """A tarball laid out like the shared one, with scripts for binaries."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bitcoin-core-test-x86_64.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in BINARIES:
            body = f"#!/bin/sh\necho {name}\n".encode()
            member = tarfile.TarInfo(f"bitcoin-core/bin/{name}")
            member.size = len(body)
            archive.addfile(member, io.BytesIO(body))
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))


def test_a_directory_of_binaries_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = tmp_path / "build"
    build.mkdir()
    for name in BINARIES:
        (build / name).write_text("#!/bin/sh\n")
    monkeypatch.setenv(ENV, str(build))
    assert ensure_binaries().directory == build.resolve()


@pytest.mark.parametrize("form", ["the tarball", "its directory"])
def test_a_tarball_or_a_directory_holding_one_is_unpacked_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    tarball = fake_tarball(tmp_path / "shared" / "bitcoin-core")
    monkeypatch.setenv(ENV, str(tarball if form == "the tarball" else tarball.parent))
    binaries = ensure_binaries()
    assert binaries.directory == tmp_path / "cache" / "bitcoin-core" / "bitcoin-core-test-x86_64"
    assert binaries.bitcoind.read_text() == "#!/bin/sh\necho bitcoind\n"
    assert binaries.bitcoin_node.stat().st_mode & 0o111


def test_a_directory_with_neither_says_what_it_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    expected = rf"no bitcoind and no Bitcoin Core tarball .* in {tmp_path}"
    with pytest.raises(BitcoinCoreMissing, match=expected):
        ensure_binaries()
