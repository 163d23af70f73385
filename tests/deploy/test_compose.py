"""docker-compose.yml, the Dockerfile and the systemd unit, checked without a Docker engine.

No machine of this project runs Docker, so the compose file is validated by a real compose
implementation's parser (Debian's docker-compose 1.29, installed by scripts/bootstrap:
``docker-compose -f docker-compose.yml config`` resolves variables and validates the schema
without an engine), and every command the images run is parsed by the real tracebridge
CLI (click's own parser, plus the settings loader for the TRACEBRIDGE_* environment). A
flag that the CLI does not have, or a setting it would refuse, fails here rather than in
a user's container. The systemd unit goes through ``systemd-analyze verify``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

from bridge.cli.main import main
from bridge.codec.registry import RegistryConfig
from bridge.config import BridgeSettings, load_settings
from bridge.resources import REPO_ROOT
from bridge.sources.usdt.privileges import USDT_CAPABILITIES

yaml = pytest.importorskip("yaml", reason="PyYAML comes with Debian's docker-compose")

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"
UNIT_FILE = REPO_ROOT / "deploy" / "systemd" / "tracebridge.service"
DOCKER_COMPOSE = shutil.which("docker-compose")

# The variables docker-compose.yml reads; cleared so the defaults are what is checked.
COMPOSE_VARIABLES = (
    "KAFKA_VERSION",
    "KAFKA_PORT",
    "APICURIO_VERSION",
    "REGISTRY_PORT",
    "TRACEBRIDGE_IMAGE_TAG",
    "BITCOIND_BINARY",
    "NODE_ID",
    "TOPIC_PREFIX",
    "REGISTRY_URL",
    "PROMETHEUS_VERSION",
    "PROMETHEUS_PORT",
    "GRAFANA_VERSION",
    "GRAFANA_PORT",
)

needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="needs Debian's docker-compose (scripts/bootstrap installs it, without an engine)",
)


def compose_config(**variables: str) -> dict[str, Any]:
    """``docker-compose config`` with ``variables`` set: the file as Docker would run it."""
    assert DOCKER_COMPOSE is not None
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
    env.update(variables)
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def dockerfile_entrypoint() -> list[str]:
    """The image's ENTRYPOINT, in exec form (the only form the Dockerfile may use)."""
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile needs an exec-form ENTRYPOINT"
    entrypoint: list[str] = json.loads(match.group(1))
    return entrypoint


def parse_cli(argv: list[str]) -> tuple[click.Command, click.Context]:
    """Parse ``argv`` (without the program name) exactly as the tracebridge CLI would."""
    with main.make_context("tracebridge", list(argv)) as ctx:
        args = [*ctx._protected_args, *ctx.args]
        name, command, rest = main.resolve_command(ctx, args)
        assert command is not None, f"no such command: {name}"
        sub = command.make_context(name or "", rest, parent=ctx)
        return command, sub


def settings_from(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], flags: dict[str, Any]
) -> BridgeSettings:
    """Load settings as `tracebridge run` would inside the container."""
    from bridge.cli.run import flag_overrides

    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    config_file = flags.pop("config_file", None)
    return load_settings(config_file, flag_overrides(**flags))


def setting_exists(env_name: str) -> bool:
    """Whether TRACEBRIDGE_A__B names a field of the settings (registry.*: RegistryConfig)."""
    path = env_name.removeprefix("TRACEBRIDGE_").lower().split("__")
    if path[0] == "registry":
        return len(path) == 2 and path[1] in RegistryConfig.model_fields
    model: Any = BridgeSettings
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = field.annotation
    return True


@needs_compose
def test_services_and_defaults() -> None:
    config = compose_config()
    services = config["services"]
    assert set(services) == {
        *("kafka", "registry", "bridge", "consumer", "prometheus", "grafana"),
        *("connect-jars", "connect"),  # tests/deploy/test_compose_connect.py
    }
    assert services["kafka"]["image"] == "apache/kafka:4.3.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["registry"]["image"] == "apicurio/apicurio-registry:3.3.3"
    for name in ("bridge", "consumer"):
        build = services[name]["build"]
        assert Path(build["context"]) == REPO_ROOT
        assert (REPO_ROOT / build["dockerfile"]).resolve() == DOCKERFILE


@needs_compose
def test_ports_and_versions_come_from_the_environment() -> None:
    config = compose_config(
        KAFKA_PORT="29092",
        REGISTRY_PORT="28081",
        KAFKA_VERSION="4.2.1",
        APICURIO_VERSION="3.3.2",
        PROMETHEUS_PORT="29090",
        GRAFANA_PORT="23000",
    )
    services = config["services"]
    assert services["kafka"]["image"] == "apache/kafka:4.2.1"
    assert services["registry"]["image"] == "apicurio/apicurio-registry:3.3.2"
    published = {str(p["published"]) for s in services.values() for p in s.get("ports", [])}
    assert published == {"29092", "28081", "29090", "23000"}
    assert (
        "EXTERNAL://localhost:29092"
        in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


@needs_compose
def test_bridge_has_the_privileges_usdt_needs() -> None:
    bridge = compose_config(BITCOIND_BINARY="/opt/bitcoin/bin/bitcoind")["services"]["bridge"]
    assert bridge["pid"] == "host"
    # Exactly these, and how they reach tracebridge: tests/deploy/test_least_privilege.py
    assert {c.short_name for c in USDT_CAPABILITIES} <= set(bridge["cap_add"])
    mounts = {}
    for volume in bridge["volumes"]:
        source, target, mode = volume.split(":")
        mounts[target] = (source, mode)
    for path in ("/sys/kernel/tracing", "/sys/kernel/debug"):
        assert mounts[path][0] == path
    for path in ("/lib/modules", "/usr/src"):
        assert mounts[path] == (path, "ro")
    # The probed binary is visible at the path the bridge is told to attach to.
    assert mounts["/opt/bitcoin/bin/bitcoind"] == ("/opt/bitcoin/bin/bitcoind", "ro")
    assert "/opt/bitcoin/bin/bitcoind" in bridge["command"]


@needs_compose
def test_bridge_command_is_the_real_run_command_with_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = compose_config()["services"]["bridge"]
    argv = [*dockerfile_entrypoint(), *bridge["command"]]
    assert argv[:2] == ["tracebridge", "run"]
    command, ctx = parse_cli(argv[1:])
    assert command.name == "run"
    assert ctx.params["binary"] == Path("/usr/local/bin/bitcoind")
    assert ctx.params["status_file"] == Path("/run/tracebridge/status.json")

    environment = bridge["environment"]
    for name in environment:
        assert setting_exists(name), f"{name} is not a tracebridge setting"
    # The settings the container would load: the environment plus the flags.
    core = {k: v for k, v in environment.items() if not k.startswith("TRACEBRIDGE_REGISTRY__")}
    flags = {k: v for k, v in ctx.params.items() if k != "status_file"}
    settings = settings_from(monkeypatch, core, flags)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.node_id == "bitcoind"
    assert str(settings.usdt.binary) == "/usr/local/bin/bitcoind"
    registry = RegistryConfig(url=environment["TRACEBRIDGE_REGISTRY__URL"])
    assert registry.url == "http://registry:8080/apis/ccompat/v7"
    # REGISTRY_URL= (empty) switches registry mode off.
    off = compose_config(REGISTRY_URL="")["services"]["bridge"]["environment"]
    assert RegistryConfig(url=off["TRACEBRIDGE_REGISTRY__URL"] or None).url is None


@needs_compose
def test_consumer_command_is_the_real_tail_command() -> None:
    consumer = compose_config(TOPIC_PREFIX="lab")["services"]["consumer"]
    argv = [*dockerfile_entrypoint(), *consumer["command"]]
    command, ctx = parse_cli(argv[1:])
    assert command.name == "tail"
    assert ctx.params["topics"] == ("lab.mempool", "lab.bridge")
    assert ctx.params["bootstrap_servers"] == "kafka:9092"
    assert ctx.params["follow"] is True
    for name in consumer["environment"]:
        assert setting_exists(name), name


def test_dockerfile_basics() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM debian:bookworm", text, re.MULTILINE)
    assert "python3-bpfcc" in text
    assert "--system-site-packages" in text
    assert dockerfile_entrypoint() == ["tracebridge"]
    # Installed editable from the checkout, with the registry client.
    assert "-e '/opt/tracebridge[registry]'" in text


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(UNIT_FILE)
    return parser


def test_systemd_unit_settings() -> None:
    service = _unit()["Service"]
    assert service["User"] not in ("", "root")
    assert set(service["AmbientCapabilities"].split()) == {c.name for c in USDT_CAPABILITIES}
    assert service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/bin/tracebridge")
    command, ctx = parse_cli(argv[1:])
    assert command.name == "run"
    assert ctx.params["config_file"] == Path("/etc/tracebridge/tracebridge.toml")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` checks the unit as systemd would load it.

    It also requires ExecStart's program to exist, so the copy points at this checkout's
    venv instead of /opt/tracebridge; nothing else changes. It exits 0 even for lines it
    ignores, so any output fails the test too.
    """
    installed = REPO_ROOT / ".venv" / "bin" / "tracebridge"
    if not installed.exists():
        pytest.skip(f"needs {installed} (scripts/bootstrap)")
    unit = tmp_path / UNIT_FILE.name
    unit.write_text(
        UNIT_FILE.read_text().replace("/opt/tracebridge/.venv/bin/tracebridge", str(installed))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == ""
