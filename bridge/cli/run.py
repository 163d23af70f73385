"""``tracebridge run``: the bridge itself."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from bridge.app import Bridge
from bridge.config import BridgeSettings, load_settings
from bridge.sources.base import Source
from bridge.sources.usdt.source import UsdtSource


def flag_overrides(**flags: Any) -> dict[str, Any]:
    """CLI flags as a nested settings dict; only the flags actually given."""
    mapping = {
        "node_id": ("node_id",),
        "source": ("source",),
        "socket": ("ipc", "socket"),
        "pid": ("usdt", "pid"),
        "pidfile": ("usdt", "pidfile"),
        "binary": ("usdt", "binary"),
        "tracepoints": ("usdt", "tracepoints"),
        "payload_capture_bytes": ("usdt", "payload_capture_bytes"),
        "bootstrap_servers": ("kafka", "bootstrap_servers"),
        "topic_prefix": ("kafka", "topic_prefix"),
    }
    overrides: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None or value == ():
            continue
        *parents, leaf = mapping[name]
        node = overrides
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return overrides


def install_stop_handlers(stop: threading.Event) -> None:
    """The first SIGINT/SIGTERM ends the current session cleanly (final ledger included);
    a second one is the default action, for when waiting on Kafka is not wanted."""

    def handler(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def source_options(function: Any) -> Any:
    """Flags shared by `run` and `demo`."""
    options = [
        click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML file."),
        click.option("--node-id", help="Node name in every record (default: host name)."),
        click.option(
            "--source",
            type=click.Choice(["usdt", "ipc"]),
            help="eBPF on the node's USDT probes, or its Cap'n Proto IPC socket.",
        ),
        click.option(
            "--socket",
            type=click.Path(path_type=Path),
            help="The node's IPC socket (-ipcbind=unix); with --source ipc.",
        ),
        click.option("--pid", type=int, help="PID of the node to trace."),
        click.option("--pidfile", type=click.Path(path_type=Path), help="The node's pid file."),
        click.option("--binary", type=click.Path(path_type=Path), help="The node's binary."),
        click.option(
            "--tracepoints",
            "-t",
            multiple=True,
            help="Glob or subsystem to attach (repeatable), e.g. -t mempool -t 'net:*_message'.",
        ),
        click.option("--payload-capture-bytes", type=int, help="P2P payload bytes to keep."),
        click.option("--bootstrap-servers", "-b", help="Kafka brokers, host:port[,...]."),
        click.option("--topic-prefix", help="Topics are <prefix>.<subsystem>."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command("run")
@source_options
@click.option(
    "--status-file",
    type=click.Path(path_type=Path),
    help="Keep a JSON status (state, session, attached tracepoints, last ledger) here.",
)
def run_command(config_file: Path | None, status_file: Path | None, **flags: Any) -> None:
    """Attach to a node and stream its tracepoints into Kafka until stopped.

    \b
    Examples:
      tracebridge run --pidfile ~/.bitcoin/bitcoind.pid -b kafka1:9092
      tracebridge run --binary /usr/local/bin/bitcoind -t mempool -t validation
      tracebridge run --source ipc --socket ~/.bitcoin/regtest/node.sock -b kafka1:9092
      TRACEBRIDGE_KAFKA__BOOTSTRAP_SERVERS=k:9092 tracebridge run --config bridge.toml
    """
    settings = load_settings(config_file, flag_overrides(**flags))
    if not settings.kafka.bootstrap_servers:
        raise click.UsageError(
            "kafka.bootstrap_servers is not set (-b host:port); `tracebridge demo` starts a "
            "local broker instead"
        )
    stop = threading.Event()
    install_stop_handlers(stop)
    Bridge(settings, make_source(settings), stop=stop, status_file=status_file).run()


def make_source(settings: BridgeSettings) -> Source:
    """The configured source (settings.source)."""
    if settings.source == "ipc":
        from bridge.sources.ipc.source import IpcSource  # pycapnp only when asked for

        return IpcSource(settings.ipc)
    return UsdtSource(settings.usdt)
