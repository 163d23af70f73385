"""Fetch a service's runnable artifacts from Maven Central into the cache, once.

Why Maven: the machines that run this project reach Maven Central but not Docker Hub or
the projects' own download sites, and both Kafka and Apicurio publish what they run
there. A POM under ``deploy/`` says what to fetch and where its ``package`` phase puts it;
``ensure_fetched`` decides whether that has already been done, and does it otherwise:

- under a lock in the version's cache directory, since a test session and a CLI start
  may race to fill it;
- with a stamp written last, recording the POM's digest: an interrupted fetch is redone
  from scratch instead of leaving a half-filled directory, and an edited POM refetches
  instead of silently using what the old one fetched (a POM that also compiles code names
  its sources, whose content joins the digest, so an edited class rebuilds too);
- failing with the command, the cache directory and the tail of Maven's output.
"""

import hashlib
import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bridge.localservice.cache import cache_root, locked
from bridge.localservice.output import tail_text
from bridge.localservice.process import run_captured

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MavenFetch:
    """One POM's ``package`` run into one version's cache directory, and how to tell it worked.

    The POM takes ``-D<name>.version``, ``-D<name>.<output_name>.dir`` (where the artifacts
    go) and ``-D<name>.build.dir`` (Maven's target/, kept in the cache rather than in the
    repository, which other people are editing).
    """

    name: str
    """The cache's subdirectory and the POM's property prefix: "kafka"."""
    version: str
    output_name: str
    """The artifacts' subdirectory of the version's cache directory: "libs"."""
    what: str
    """Names the fetch in messages: "Kafka 4.3.1 jars"."""
    pom: Path
    expect: str
    """A glob that matches in the output once a fetch is complete: "*.jar"."""
    stamp_name: str
    error: type[Exception]
    """Raised, with the evidence, whenever the fetch fails."""
    timeout_s: float
    sources: Path | None = None
    """A directory the POM compiles (``src/``): its files' content joins the stamp's digest."""

    @property
    def cache_dir(self) -> Path:
        """``<cache>/<name>/<version>``: the lock, the stamp, the output and the build."""
        return cache_root() / self.name / self.version

    @property
    def output(self) -> Path:
        """Where the POM puts the artifacts; what ``ensure_fetched`` returns."""
        return self.cache_dir / self.output_name

    @property
    def build_dir(self) -> Path:
        """Maven's build directory, inside the cache."""
        return self.cache_dir / "build"

    @property
    def stamp(self) -> Path:
        """Written only after a complete fetch; see the module docstring."""
        return self.cache_dir / self.stamp_name

    def maven_properties(self) -> dict[str, str]:
        """The ``-D`` properties that point the POM at this version and the cache."""
        return {
            f"{self.name}.version": self.version,
            f"{self.name}.{self.output_name}.dir": str(self.output),
            f"{self.name}.build.dir": str(self.build_dir),
        }


def ensure_fetched(fetch: MavenFetch) -> Path:
    """Return ``fetch.output``, running Maven first unless a current stamp says it is done."""
    if _stamp_is_current(fetch):
        return fetch.output
    fetch.cache_dir.mkdir(parents=True, exist_ok=True)
    with locked(fetch.cache_dir / ".lock"):
        if _stamp_is_current(fetch):
            return fetch.output
        fetch.stamp.unlink(missing_ok=True)
        shutil.rmtree(fetch.output, ignore_errors=True)
        # Maven's markers (unpack's, for one) would make it skip filling the fresh output.
        shutil.rmtree(fetch.build_dir, ignore_errors=True)
        started = time.monotonic()
        logger.info(
            "Fetching %s from Maven Central into %s (first run only).", fetch.what, fetch.output
        )
        _run_maven(fetch)
        found = sorted(fetch.output.glob(fetch.expect))
        if not found:
            raise fetch.error(
                f"Maven succeeded but left no {fetch.expect} in {fetch.output}; check {fetch.pom}."
            )
        stamp = {
            f"{fetch.name}_version": fetch.version,
            "pom_sha256": _digest(fetch),
            "file_count": len(found),
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        fetch.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
        logger.info("Fetched %s in %.1f s.", fetch.what, time.monotonic() - started)
    return fetch.output


def _stamp_is_current(fetch: MavenFetch) -> bool:
    """Tell whether a previous fetch completed with the POM as it is now."""
    try:
        recorded = json.loads(fetch.stamp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or not any(fetch.output.glob(fetch.expect)):
        return False
    # Without the POM (an installed, non-checkout copy) trust the cache: it cannot be
    # refetched anyway.
    return not fetch.pom.is_file() or recorded.get("pom_sha256") == _digest(fetch)


def _digest(fetch: MavenFetch) -> str:
    """The POM's sha256; with ``sources``, of the POM and every source file's path and bytes.

    Without sources it is the POM's own digest, as stamps written before ``sources`` hold.
    """
    digest = hashlib.sha256(fetch.pom.read_bytes())
    if fetch.sources is not None:
        for path in sorted(p for p in fetch.sources.rglob("*") if p.is_file()):
            digest.update(b"\0" + str(path.relative_to(fetch.sources)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run_maven(fetch: MavenFetch) -> None:
    """Run the POM's ``package`` phase with every output redirected into the cache."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise fetch.error(
            f"Cannot fetch {fetch.what}: `mvn` is not on PATH (Debian: apt-get install maven)."
        )
    if not fetch.pom.is_file():
        raise fetch.error(
            f"Cannot fetch {fetch.what}: {fetch.pom} is missing; "
            "run from a source checkout of tracebridge."
        )
    cmd = [mvn, "-B", "-q", "-f", str(fetch.pom), "package"]
    cmd += [f"-D{name}={value}" for name, value in fetch.maven_properties().items()]
    logger.debug("Running %s", " ".join(cmd))
    try:
        result = run_captured(cmd, fetch.timeout_s)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else ""
        raise fetch.error(
            f"Fetching {fetch.what} with Maven timed out after {fetch.timeout_s:.0f} s.\n"
            f"Cache directory: {fetch.output}\n{tail_text(output)}"
        ) from exc
    if result.returncode != 0:
        raise fetch.error(
            f"Fetching {fetch.what} with Maven failed (exit {result.returncode}).\n"
            f"Command: {' '.join(cmd)}\n"
            f"Cache directory: {fetch.output}\n"
            f"Last lines of Maven's output:\n{tail_text(result.stdout)}"
        )
