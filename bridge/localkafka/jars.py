"""Fetch Apache Kafka's broker jars from Maven Central into a cache outside the repository.

Why Maven and not the Apache tarball: the machines that run this project reach Maven
Central but not downloads.apache.org, and Kafka publishes every broker module there.
``deploy/kafka/pom.xml`` lists what to fetch; this module only decides where it goes and
whether it has already been done.

Run ``python -m bridge.localkafka.jars`` to fetch the default version and print the
directory (``scripts/bootstrap`` does exactly that).
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bridge.localkafka import LocalKafkaError

logger = logging.getLogger(__name__)

# The newest Apache Kafka release (Jun 2026, shared/reference/kafka-local.md section 1.1);
# keep in step with <kafka.version> in deploy/kafka/pom.xml.
DEFAULT_KAFKA_VERSION = "4.3.1"

CACHE_ENV_VAR = "TRACEBRIDGE_CACHE_DIR"

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
POM_PATH = DEPLOY_DIR / "pom.xml"

# A cold fetch downloads ~66 MB into ~/.m2 (44 MB of jars plus Maven's plugins; measured
# 5 s on the dev machine); 15 minutes still succeeds at ~75 KB/s, yet ends a hung network.
MVN_TIMEOUT_S = 15 * 60

# Enough of Maven's output to show the failing artifact or repository error, which Maven
# prints last, without burying the message.
MVN_TAIL_LINES = 25

_STAMP_NAME = "jars.stamp"

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def cache_root() -> Path:
    """Return the cache root, so that every helper (jars, run dirs) agrees on it.

    ``TRACEBRIDGE_CACHE_DIR`` wins so CI can keep the cache on a persistent volume.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tracebridge"


def version_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return ``<cache>/kafka/<version>``; one directory per version so versions coexist."""
    return cache_root() / "kafka" / version


def libs_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return where the jars of ``version`` live (whether or not they are fetched yet)."""
    return version_dir(version) / "libs"


def ensure_jars(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return the directory holding every jar the broker needs, fetching them once.

    The stamp file is written only after Maven succeeded, so an interrupted download is
    retried from scratch rather than leaving a half-filled classpath that fails later with
    a confusing ``ClassNotFoundException``. The stamp records the POM's digest, so editing
    the POM (say, a new log4j2 version) refetches instead of silently using stale jars.
    """
    vdir = version_dir(version)
    libs = libs_dir(version)
    stamp = vdir / _STAMP_NAME
    if _stamp_is_current(stamp, libs):
        return libs

    vdir.mkdir(parents=True, exist_ok=True)
    # A lock, because a test session and a CLI start (or two xdist workers) may race to
    # fill the same cache directory.
    with _locked(vdir / ".lock"):
        if _stamp_is_current(stamp, libs):
            return libs
        stamp.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        started = time.monotonic()
        logger.info(
            "Fetching Kafka %s jars from Maven Central into %s (first run only).", version, libs
        )
        _run_maven(version, libs, vdir / "build")
        jars = sorted(libs.glob("*.jar"))
        if not jars:
            raise LocalKafkaError(
                f"Maven succeeded but copied no jars into {libs}; check {POM_PATH}."
            )
        stamp.write_text(
            json.dumps(
                {
                    "kafka_version": version,
                    "pom_sha256": _pom_digest(),
                    "jar_count": len(jars),
                    "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=2,
            )
            + "\n"
        )
        logger.info(
            "Fetched %d Kafka %s jars in %.1f s.", len(jars), version, time.monotonic() - started
        )
    return libs


def _stamp_is_current(stamp: Path, libs: Path) -> bool:
    """Tell whether a previous fetch completed with the POM as it is now."""
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or not any(libs.glob("*.jar")):
        return False
    # Without the POM (an installed, non-checkout copy) trust the cache: it cannot be
    # refetched anyway.
    return not POM_PATH.is_file() or recorded.get("pom_sha256") == _pom_digest()


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_maven(version: str, libs: Path, build: Path) -> None:
    """Run the POM's ``package`` phase with every output redirected into the cache."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Cannot fetch the Kafka jars: `mvn` is not on PATH (Debian: apt-get install maven)."
        )
    if not POM_PATH.is_file():
        raise LocalKafkaError(
            f"Cannot fetch the Kafka jars: {POM_PATH} is missing; "
            "run from a source checkout of tracebridge."
        )
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM_PATH),
        "package",
        f"-Dkafka.version={version}",
        f"-Dkafka.libs.dir={libs}",
        # Keeps Maven's target/ out of the repository, which other people are editing.
        f"-Dkafka.build.dir={build}",
    ]
    logger.debug("Running %s", " ".join(cmd))
    try:
        result = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=MVN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else ""
        raise LocalKafkaError(
            f"Fetching Kafka {version} jars with Maven timed out after {MVN_TIMEOUT_S} s.\n"
            f"Cache directory: {libs}\n{_tail(output)}"
        ) from exc
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Fetching Kafka {version} jars with Maven failed (exit {result.returncode}).\n"
            f"Command: {' '.join(cmd)}\n"
            f"Cache directory: {libs}\n"
            f"Last lines of Maven's output:\n{_tail(result.stdout)}"
        )


def _tail(output: str, lines: int = MVN_TAIL_LINES) -> str:
    # Debian's Maven 3.8 emits colour resets even in batch mode; they garble the error text.
    plain = _ANSI_ESCAPE.sub("", output)
    return "\n".join(plain.rstrip().splitlines()[-lines:]) or "(no output)"


if __name__ == "__main__":
    # Printing belongs to the CLI layer, so the entry point lives there.
    from bridge.localkafka.cli import jars_main

    jars_main()
