"""The compose file's Kafka Connect services run what tests/jvm runs.

``connect-jars`` builds deploy/jvm/'s POM into a volume, ``connect`` runs Kafka Connect
standalone from it with deploy/jvm/connect/'s two properties files, mounted unchanged.
tests/jvm proves those files, given their settings through the environment, deliver
every record; here the compose file must give the same settings, so the service is the
tested pipeline and not a copy of it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from bridge.jvmclients.jars import CONNECT_DIR, DEPLOY_DIR
from tests.deploy.test_compose import compose_config, needs_compose
from tests.support.jvm import connect_environment, registry_v2_url

PROPERTIES = ("worker.properties", "tracebridge-file-sink.properties")


def _variables() -> set[str]:
    """Every ``${env:NAME}`` the two properties files read."""
    found: set[str] = set()
    for name in PROPERTIES:
        found |= set(re.findall(r"\$\{env:([A-Z_]+)\}", (CONNECT_DIR / name).read_text()))
    return found


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (host paths resolved by compose)."""
    out = {}
    for volume in service["volumes"]:
        source, target, *_ = str(volume).split(":")
        out[target] = source
    return out


def test_the_tests_set_every_variable_the_properties_read(tmp_path: Path) -> None:
    env = connect_environment("k:9092", "http://r:8080/apis/ccompat/v7", "p\\..*", tmp_path)
    assert set(env) == _variables()


@needs_compose
def test_connect_runs_the_tested_files_with_every_variable_set() -> None:
    services = compose_config(TOPIC_PREFIX="lab")["services"]
    connect = services["connect"]
    mounts = _mounts(connect)
    config_dir = next(t for t, s in mounts.items() if Path(s) == CONNECT_DIR)
    argv = connect["command"]
    assert argv[argv.index("-cp") + 1] == "/opt/tracebridge-jvm/libs/*"
    assert argv[-3:] == [
        "org.apache.kafka.connect.cli.ConnectStandalone",
        *(f"{config_dir}/{name}" for name in PROPERTIES),
    ]
    environment = connect["environment"]
    assert set(environment) == _variables()
    assert environment["CONNECT_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert environment["CONNECT_TOPICS_REGEX"] == r"lab\..*"
    # The registry the bridge writes to, through the API Apicurio's serdes speak.
    bridge_registry = services["bridge"]["environment"]["TRACEBRIDGE_REGISTRY__URL"]
    assert environment["CONNECT_REGISTRY_URL"] == registry_v2_url(bridge_registry)
    # Its state and output in a volume of its own.
    data = mounts["/var/lib/tracebridge-connect"]
    assert not data.startswith("/")
    for name in ("CONNECT_OFFSETS_FILE", "CONNECT_SINK_FILE"):
        assert environment[name].startswith("/var/lib/tracebridge-connect/")


@needs_compose
def test_connect_jars_builds_the_classpath_connect_runs_from() -> None:
    services = compose_config()["services"]
    jars, connect = services["connect-jars"], services["connect"]
    assert connect["depends_on"]["connect-jars"]["condition"] == "service_completed_successfully"
    mounts = _mounts(jars)
    pom_dir = next(t for t, s in mounts.items() if Path(s) == DEPLOY_DIR)
    argv = shlex.split(jars["command"][-1])
    mvn = argv[argv.index("mvn") :]
    assert mvn[mvn.index("-f") + 1] == f"{pom_dir}/pom.xml"
    assert "package" in mvn
    libs = next(a.split("=", 1)[1] for a in mvn if a.startswith("-Djvmclients.libs.dir="))
    assert argv[:3] == ["rm", "-rf", libs]  # no stale jars of an older POM
    # The volume it fills is the one connect's classpath comes from.
    volume = next(s for t, s in mounts.items() if libs.startswith(t + "/"))
    assert _mounts(connect)["/opt/tracebridge-jvm"] == volume
