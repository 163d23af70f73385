"""Kafka's JVMs: find ``java``, format the storage once, and the broker's command line.

These are the two Java programs a local broker needs (``kafka.tools.StorageTool`` and
``kafka.Kafka``), run from the jars ``bridge.localkafka.jars`` caches instead of through
the tarball's shell scripts, which the project's machines cannot download.
"""

import base64
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.jars import DEPLOY_DIR
from bridge.localkafka.rundir import RunDir
from bridge.localservice.output import tail_text
from bridge.localservice.process import run_captured

logger = logging.getLogger(__name__)

# kafka-local.md 1.7 for one broker on 2 cores: kafka-server-start.sh's heap with a smaller
# -Xms, and kafka-run-class.sh's G1 flags. Measured RSS with these: ~250 MB idle.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms512m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

# kafka-run-class.sh's default heap for tools such as StorageTool.
STORAGE_TOOL_JVM_OPTIONS: tuple[str, ...] = ("-Xmx256m",)

# StorageTool format is one JVM start (measured ~1.3 s); 120 s only trips on a wedged box.
FORMAT_TIMEOUT_S = 120.0


def find_java() -> str:
    """Return ``$JAVA_HOME/bin/java`` or the ``java`` on PATH, or say how to install one."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError(
            "Cannot start Kafka: no `java` on PATH and no JAVA_HOME "
            "(Kafka 4 needs Java 17+; Debian: apt-get install openjdk-17-jre-headless)."
        )
    return java


def kafka_uuid() -> str:
    """Return a cluster id in Kafka's own ``Uuid`` form (22 chars of base64url).

    Generated here rather than with ``StorageTool random-uuid`` to save a JVM start. Kafka
    re-draws ids starting with "-" because they parse as command-line options.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def format_storage_once(
    java: str,
    libs: Path,
    run_dir: RunDir,
    extra_args: Sequence[str] = (),
    *,
    cluster_id: str | None = None,
) -> None:
    """Format log.dirs on first use only, so topics survive a stop and start.

    ``extra_args`` go to StorageTool's ``format``: KRaft keeps SCRAM credentials in the
    metadata log, so a secured broker's users are created here (``--add-scram``).
    Without ``cluster_id`` this is a single node with a quorum of its own (a new id,
    ``--standalone``); with it, one node of a static quorum (``controller.quorum.voters``
    in its config), which every node must share the id of and which StorageTool refuses
    ``--standalone`` for.
    """
    data_dir = run_dir.data
    if (data_dir / "meta.properties").is_file():
        return
    quorum_args = ["--standalone"] if cluster_id is None else []
    cluster_id = cluster_id or kafka_uuid()
    cmd = [
        java,
        *STORAGE_TOOL_JVM_OPTIONS,
        *_log_options(run_dir.logs),
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        *quorum_args,
        "-t",
        cluster_id,
        "-c",
        str(run_dir.server_properties),
        *extra_args,
    ]
    try:
        result = run_captured(cmd, FORMAT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise LocalKafkaError(
            f"Formatting Kafka storage in {data_dir} timed out after {FORMAT_TIMEOUT_S:.0f} s."
        ) from exc
    if result.returncode != 0:
        # A half-formatted directory would be skipped next time; start from nothing.
        shutil.rmtree(data_dir, ignore_errors=True)
        raise LocalKafkaError(
            f"Formatting Kafka storage in {data_dir} failed (exit {result.returncode}).\n"
            f"{tail_text(result.stdout)}"
        )
    logger.info("Formatted Kafka storage in %s (cluster id %s).", data_dir, cluster_id)


def broker_command(java: str, libs: Path, jvm_options: Sequence[str], run_dir: RunDir) -> list[str]:
    """Return the command line of ``kafka.Kafka`` for this run directory.

    The config path is the last argument: it is the marker by which ``LocalBroker``
    recognises this JVM in /proc.
    """
    return [
        java,
        *jvm_options,
        *_log_options(run_dir.logs),
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(run_dir.server_properties),
    ]


def _log_options(logs_dir: Path) -> list[str]:
    # Looked up here, not in a module constant: jars and this module share an import cycle
    # (through jars' __main__ block and the CLI), and mypy cannot type a module-level use
    # of DEPLOY_DIR from inside that cycle.
    log4j_config = DEPLOY_DIR / "log4j2.properties"
    if not log4j_config.is_file():
        raise LocalKafkaError(f"Missing {log4j_config}; run from a source checkout.")
    return [
        f"-Dlog4j2.configurationFile={log4j_config}",
        f"-Dkafka.logs.dir={logs_dir}",
    ]
