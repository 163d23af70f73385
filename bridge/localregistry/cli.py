"""The ``registry`` command group: start, stop and inspect the local schema registry.

Each command is a separate process, so state passes through the run directory's
registry.json (see ``bridge.localregistry.registry``), never through memory; the commands
are those of every local service (``bridge.localservice.cli``), as for ``tracebridge kafka``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bridge.localkafka import LocalKafkaError
from bridge.localregistry.jars import DEFAULT_APICURIO_VERSION, ensure_app
from bridge.localregistry.java import ensure_registry_java
from bridge.localregistry.registry import DEFAULT_PORT, LocalRegistry
from bridge.localservice.cli import (
    FetchCommand,
    ServiceCommands,
    run_fetch_command,
    service_group,
)

logger = logging.getLogger(__name__)


def _fetch(apicurio_version: str) -> Path:
    """Fetch the app and a Java 21+ runtime (each once); return the app directory."""
    app = ensure_app(apicurio_version)
    java = ensure_registry_java()
    logger.info("Registry Java runtime: %s", java)
    return app


registry_group = service_group(
    ServiceCommands(
        help="Run a local Apicurio schema registry (Confluent-compatible API, no Docker).",
        service=LocalRegistry,
        default_port=DEFAULT_PORT,
        address_name="URL",
        status_key="url",
        start_note=(
            "The URL is the Confluent-compatible API, e.g.\n"
            "  http://127.0.0.1:18081/apis/ccompat/v7\n"
        ),
        fetch=FetchCommand(
            name="fetch",
            help=(
                "Fetch the registry app and a Java 21+ runtime into the cache (once); "
                "print the app dir."
            ),
            version_option="apicurio-version",
            version_help="Apicurio Registry release to fetch from Maven Central.",
            default_version=DEFAULT_APICURIO_VERSION,
            fetch=_fetch,
        ),
        error=LocalKafkaError,
    )
)


def fetch_main() -> None:
    """Entry point of ``python -m bridge.localregistry.jars`` (used by scripts/bootstrap)."""
    run_fetch_command(registry_group, "fetch", prog_name="python -m bridge.localregistry.jars")
