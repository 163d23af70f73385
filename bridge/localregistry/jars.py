"""Fetch Apicurio Registry from Maven Central into the cache outside the repository.

Why Maven: the project's machines reach Maven Central but not Docker Hub, and Apicurio
publishes its runnable app there as ``io.apicurio:apicurio-registry-app:<v>:tar.gz:all``
(~159 MB, a Quarkus fast-jar). ``deploy/registry/pom.xml`` unpacks it; this module only
decides where, and whether that has already been done, with the Kafka jars' discipline
(``bridge.localkafka.jars``): the same cache root, a lock, and a stamp written last that
records the POM's digest.

Run ``python -m bridge.localregistry.jars`` to fetch the app and a Java 21+ runtime and
print the app directory (``scripts/bootstrap`` does exactly that).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from bridge.localkafka.jars import _locked, _tail, cache_root
from bridge.localregistry import LocalRegistryError

logger = logging.getLogger(__name__)

# The release that resolved from Central when deploy/registry/pom.xml was written; keep in
# step with <apicurio.version> there.
DEFAULT_APICURIO_VERSION = "3.3.3"

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "registry"
POM_PATH = DEPLOY_DIR / "pom.xml"

# The file `java -jar` runs; its presence is what "unpacked" means.
RUNNER_JAR = "quarkus-run.jar"

# A cold fetch is ~159 MB (measured 9.5 s on the dev machine); 30 minutes still succeeds at
# ~90 KB/s, yet ends a hung network.
MVN_TIMEOUT_S = 30 * 60

_STAMP_NAME = "app.stamp"


def version_dir(version: str = DEFAULT_APICURIO_VERSION) -> Path:
    """Return ``<cache>/apicurio/<version>``; one directory per version so versions coexist."""
    return cache_root() / "apicurio" / version


def app_dir(version: str = DEFAULT_APICURIO_VERSION) -> Path:
    """Return where the unpacked app of ``version`` lives (whether or not it is fetched yet)."""
    return version_dir(version) / "app"


def ensure_app(version: str = DEFAULT_APICURIO_VERSION) -> Path:
    """Return the directory holding ``quarkus-run.jar``, fetching the app once.

    The stamp is written only after Maven succeeded and the runner jar is in place, so an
    interrupted download is redone from scratch instead of starting a half-unpacked app.
    """
    vdir = version_dir(version)
    app = app_dir(version)
    stamp = vdir / _STAMP_NAME
    if _stamp_is_current(stamp, app):
        return app
    vdir.mkdir(parents=True, exist_ok=True)
    with _locked(vdir / ".lock"):
        if _stamp_is_current(stamp, app):
            return app
        stamp.unlink(missing_ok=True)
        shutil.rmtree(app, ignore_errors=True)
        # Maven's unpack markers would make it skip unpacking into the fresh app dir.
        shutil.rmtree(vdir / "build", ignore_errors=True)
        started = time.monotonic()
        logger.info(
            "Fetching Apicurio Registry %s from Maven Central into %s (first run only).",
            version,
            app,
        )
        _run_maven(version, app, vdir / "build")
        if not (app / RUNNER_JAR).is_file():
            raise LocalRegistryError(
                f"Maven succeeded but {app / RUNNER_JAR} is missing; check {POM_PATH}."
            )
        stamp.write_text(
            json.dumps(
                {
                    "apicurio_version": version,
                    "pom_sha256": _pom_digest(),
                    "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=2,
            )
            + "\n"
        )
        logger.info("Fetched Apicurio Registry %s in %.1f s.", version, time.monotonic() - started)
    return app


def _stamp_is_current(stamp: Path, app: Path) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or not (app / RUNNER_JAR).is_file():
        return False
    # Without the POM (an installed, non-checkout copy) trust the cache.
    return not POM_PATH.is_file() or recorded.get("pom_sha256") == _pom_digest()


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


def _run_maven(version: str, app: Path, build: Path) -> None:
    """Run the POM's ``package`` phase with every output redirected into the cache.

    The same command shape as ``bridge.localkafka.jars._run_maven``, whose property names
    are Kafka's, hence this small twin.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalRegistryError(
            "Cannot fetch Apicurio Registry: `mvn` is not on PATH (Debian: apt-get install maven)."
        )
    if not POM_PATH.is_file():
        raise LocalRegistryError(
            f"Cannot fetch Apicurio Registry: {POM_PATH} is missing; "
            "run from a source checkout of tracebridge."
        )
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM_PATH),
        "package",
        f"-Dapicurio.version={version}",
        f"-Dapicurio.app.dir={app}",
        # Keeps Maven's target/ out of the repository, which other people are editing.
        f"-Dapicurio.build.dir={build}",
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
        raise LocalRegistryError(
            f"Fetching Apicurio Registry {version} with Maven timed out after "
            f"{MVN_TIMEOUT_S} s.\nCache directory: {app}\n{_tail(output)}"
        ) from exc
    if result.returncode != 0:
        raise LocalRegistryError(
            f"Fetching Apicurio Registry {version} with Maven failed (exit {result.returncode}).\n"
            f"Command: {' '.join(cmd)}\n"
            f"Cache directory: {app}\n"
            f"Last lines of Maven's output:\n{_tail(result.stdout)}"
        )


if __name__ == "__main__":
    from bridge.localregistry.cli import fetch_main

    fetch_main()
