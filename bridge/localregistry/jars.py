"""Fetch Apicurio Registry from Maven Central into the cache outside the repository.

Why Maven: the project's machines reach Maven Central but not Docker Hub, and Apicurio
publishes its runnable app there as ``io.apicurio:apicurio-registry-app:<v>:tar.gz:all``
(~159 MB, a Quarkus fast-jar). ``deploy/registry/pom.xml`` unpacks it; this module says
where, and ``bridge.localservice.maven`` whether that has already been done, as for the
Kafka jars: the same cache root, a lock, and a stamp written last that records the POM's
digest.

Run ``python -m bridge.localregistry.jars`` to fetch the app and a Java 21+ runtime and
print the app directory (``scripts/bootstrap`` does exactly that).
"""

from __future__ import annotations

from pathlib import Path

from bridge.localregistry import LocalRegistryError
from bridge.localservice.maven import MavenFetch, ensure_fetched

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


def _fetch(version: str) -> MavenFetch:
    return MavenFetch(
        name="apicurio",
        version=version,
        output_name="app",
        what=f"Apicurio Registry {version}",
        pom=POM_PATH,
        expect=RUNNER_JAR,
        stamp_name="app.stamp",
        error=LocalRegistryError,
        timeout_s=MVN_TIMEOUT_S,
    )


def ensure_app(version: str = DEFAULT_APICURIO_VERSION) -> Path:
    """Return the directory holding ``quarkus-run.jar``, fetching the app once.

    An interrupted download is redone from scratch instead of starting a half-unpacked app.
    """
    return ensure_fetched(_fetch(version))


if __name__ == "__main__":
    from bridge.localregistry.cli import fetch_main

    fetch_main()
