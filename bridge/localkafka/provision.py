"""Get a run directory ready for a fresh broker, before any broker JVM is started.

Every step here can fail for a reason worth naming (a busy port, no ``java``, a Maven or
StorageTool error). Doing them up front turns each into a specific error, instead of a
broker JVM that starts and dies with the cause buried in its output.
"""

from collections.abc import Mapping
from pathlib import Path

from bridge.localkafka.jars import ensure_jars
from bridge.localkafka.jvm import find_java, format_storage_once
from bridge.localkafka.ports import ensure_port_free
from bridge.localkafka.properties import write_server_properties
from bridge.localkafka.rundir import RunDir


def prepare_fresh_start(
    run_dir: RunDir,
    port: int,
    controller_port: int,
    kafka_version: str,
    extra_properties: Mapping[str, str],
) -> tuple[str, Path]:
    """Check the ports, fetch the jars, write the config and format storage (once).

    Returns the ``java`` executable and the jar directory to launch the broker with. The
    ports are checked first, so a busy port fails before anything is written.
    """
    ensure_port_free(port, "client")
    ensure_port_free(controller_port, "controller")
    libs = ensure_jars(kafka_version)
    java = find_java()
    run_dir.logs.mkdir(parents=True, exist_ok=True)
    write_server_properties(
        run_dir.server_properties, port, controller_port, run_dir.data, extra_properties
    )
    format_storage_once(java, libs, run_dir)
    return java, libs
