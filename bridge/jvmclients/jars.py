"""Build the JVM readers (``deploy/jvm/``) from Maven Central into the cache, once.

The same machinery as the broker's jars (``bridge.localservice.maven``): a lock, and a
stamp written last that records the digest of the POM *and* of the Java sources under
``deploy/jvm/src``, so an edited class rebuilds instead of running stale. After the
first build nothing touches the network: the stamp says the classpath is complete.

Run ``python -m bridge.jvmclients.jars`` to build and print the classpath directory
(``scripts/bootstrap`` does exactly that). Run the programs with ``java -cp '<dir>/*'``
(``deploy/jvm/README.md``).
"""

from pathlib import Path

from bridge.jvmclients import JvmClientsError
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION
from bridge.localservice.maven import MavenFetch, ensure_fetched

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "jvm"
POM_PATH = DEPLOY_DIR / "pom.xml"
CONNECT_DIR = DEPLOY_DIR / "connect"
"""The Connect worker's and the sink's properties files, shared with docker-compose.yml."""

# The project's own jar: present only once the compile and the copy both succeeded.
OWN_JAR = "tracebridge-jvm-*.jar"

# A cold build fetches 84 MB into ~/.m2 (41 MB of jars plus Maven's plugins; measured 19 s
# on the dev machine); 15 minutes still succeeds at ~100 KB/s, yet ends a hung network.
MVN_TIMEOUT_S = 15 * 60


def _fetch(version: str) -> MavenFetch:
    return MavenFetch(
        name="jvmclients",
        version=version,
        output_name="libs",
        what=f"the JVM readers (Kafka {version} clients and Connect, Avro, Apicurio)",
        pom=POM_PATH,
        expect=OWN_JAR,
        stamp_name="build.stamp",
        error=JvmClientsError,
        timeout_s=MVN_TIMEOUT_S,
        sources=DEPLOY_DIR / "src",
    )


def ensure_libs(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return the directory holding the readers' whole classpath, building it once.

    ``version`` is the Kafka release of the clients and Connect: the local broker's.
    """
    return ensure_fetched(_fetch(version))


def main() -> None:
    """Build (once) and print the classpath directory; errors as one line, exit 1."""
    import logging
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(ensure_libs())
    except JvmClientsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
