"""Fetch Apache Kafka's broker jars from Maven Central into a cache outside the repository.

Why Maven and not the Apache tarball: the machines that run this project reach Maven
Central but not downloads.apache.org, and Kafka publishes every broker module there.
``deploy/kafka/pom.xml`` lists what to fetch; this module says where it goes, and
``bridge.localservice.maven`` whether it has already been done (a lock, and a stamp that
records the POM's digest, so editing the POM refetches instead of using stale jars).

Run ``python -m bridge.localkafka.jars`` to fetch the default version and print the
directory (``scripts/bootstrap`` does exactly that).
"""

from pathlib import Path

from bridge.localkafka import LocalKafkaError
from bridge.localservice.maven import MavenFetch, ensure_fetched

# The newest Apache Kafka release (Jun 2026, shared/reference/kafka-local.md section 1.1);
# keep in step with <kafka.version> in deploy/kafka/pom.xml.
DEFAULT_KAFKA_VERSION = "4.3.1"

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
POM_PATH = DEPLOY_DIR / "pom.xml"

# A cold fetch downloads ~66 MB into ~/.m2 (44 MB of jars plus Maven's plugins; measured
# 5 s on the dev machine); 15 minutes still succeeds at ~75 KB/s, yet ends a hung network.
MVN_TIMEOUT_S = 15 * 60


def _fetch(version: str) -> MavenFetch:
    return MavenFetch(
        name="kafka",
        version=version,
        output_name="libs",
        what=f"Kafka {version} jars",
        pom=POM_PATH,
        expect="*.jar",
        stamp_name="jars.stamp",
        error=LocalKafkaError,
        timeout_s=MVN_TIMEOUT_S,
    )


def ensure_jars(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return the directory holding every jar the broker needs, fetching them once.

    An interrupted download is retried from scratch rather than leaving a half-filled
    classpath that fails later with a confusing ``ClassNotFoundException``.
    """
    return ensure_fetched(_fetch(version))


if __name__ == "__main__":
    # Printing belongs to the CLI layer, so the entry point lives there.
    from bridge.localkafka.cli import jars_main

    jars_main()
