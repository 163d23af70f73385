"""``ensure_fetched`` with a fake ``mvn`` on PATH: the stamp, the refetch, the errors."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from bridge.localservice.maven import MavenFetch, ensure_fetched
from tests.unit.localservice.fake import FakeError

# Logs its arguments, then "fetches": writes a jar into -Dout.libs.dir, unless told to fail.
FAKE_MVN = """#!/bin/sh
echo "$@" >> "$FAKE_MVN_LOG"
if [ -n "$FAKE_MVN_FAIL" ]; then
    printf '\\033[1;31m[ERROR]\\033[m Could not resolve thing:1.0\\n'
    exit 1
fi
for arg in "$@"; do
    case "$arg" in
        -Dout.libs.dir=*)
            dir="${arg#-Dout.libs.dir=}"; mkdir -p "$dir"; touch "$dir/thing-1.0.jar" ;;
    esac
done
"""


@pytest.fixture
def mvn_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    log = tmp_path / "mvn.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MVN_LOG", str(log))
    return log


@pytest.fixture
def fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MavenFetch:
    monkeypatch.setenv("TRACEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    return MavenFetch(
        name="out",
        version="1.0",
        output_name="libs",
        what="Thing 1.0 jars",
        pom=pom,
        expect="*.jar",
        stamp_name="jars.stamp",
        error=FakeError,
        timeout_s=60,
    )


def _runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_fetches_once_then_trusts_the_stamp(
    tmp_path: Path, fetch: MavenFetch, mvn_log: Path
) -> None:
    assert ensure_fetched(fetch) == fetch.output
    assert ensure_fetched(fetch) == fetch.output

    runs = _runs(mvn_log)
    assert len(runs) == 1
    assert fetch.cache_dir == tmp_path / "cache" / "out" / "1.0"
    assert "-Dout.version=1.0" in runs[0]
    assert f"-Dout.build.dir={fetch.cache_dir / 'build'}" in runs[0]
    assert (fetch.output / "thing-1.0.jar").is_file()
    assert '"out_version": "1.0"' in fetch.stamp.read_text()


def test_an_edited_pom_or_an_emptied_output_refetches(fetch: MavenFetch, mvn_log: Path) -> None:
    ensure_fetched(fetch)
    fetch.pom.write_text("<project><!-- edited --></project>")
    ensure_fetched(fetch)
    (fetch.output / "thing-1.0.jar").unlink()
    ensure_fetched(fetch)
    assert len(_runs(mvn_log)) == 3


def test_a_failure_raises_the_given_error_with_the_output_tail(
    fetch: MavenFetch, mvn_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")

    with pytest.raises(
        FakeError, match=r"Fetching Thing 1.0 jars with Maven failed \(exit 1\)"
    ) as info:
        ensure_fetched(fetch)

    assert "[ERROR] Could not resolve thing:1.0" in str(info.value)
    assert not fetch.stamp.exists()


def test_output_without_the_expected_files_is_an_error(fetch: MavenFetch, mvn_log: Path) -> None:
    with pytest.raises(FakeError, match=r"Maven succeeded but left no \*\.war"):
        ensure_fetched(dataclasses.replace(fetch, expect="*.war"))


def test_without_mvn_the_error_says_how_to_install_it(
    tmp_path: Path, fetch: MavenFetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FakeError, match=r"Cannot fetch Thing 1\.0 jars: `mvn` is not on PATH"):
        ensure_fetched(fetch)


def test_an_edited_source_file_rebuilds(tmp_path: Path, fetch: MavenFetch, mvn_log: Path) -> None:
    """A POM that compiles code (deploy/jvm/) names its sources: editing one rebuilds."""
    sources = tmp_path / "src"
    (sources / "pkg").mkdir(parents=True)
    (sources / "pkg" / "A.java").write_text("class A {}")
    compiling = dataclasses.replace(fetch, sources=sources)
    ensure_fetched(compiling)
    ensure_fetched(compiling)
    (sources / "pkg" / "A.java").write_text("class A { int x; }")
    ensure_fetched(compiling)
    (sources / "pkg" / "B.java").write_text("class B {}")
    ensure_fetched(compiling)
    assert len(_runs(mvn_log)) == 3


def test_without_sources_the_stamp_holds_the_poms_own_digest(
    fetch: MavenFetch, mvn_log: Path
) -> None:
    """So stamps written before sources existed stay current (no refetch of the broker)."""
    ensure_fetched(fetch)
    pom_sha256 = hashlib.sha256(fetch.pom.read_bytes()).hexdigest()
    assert f'"pom_sha256": "{pom_sha256}"' in fetch.stamp.read_text()
