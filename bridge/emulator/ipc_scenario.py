"""What the emulated IPC node does: the scenario and the command line.

Shared by the node process (:mod:`bridge.emulator.ipc_runtime`) and its Python wrapper
(:mod:`bridge.emulator.ipc_node`), so the command line is written down once; the
report and record formats are in :mod:`bridge.emulator.ipc_report`. Imports neither
pycapnp nor anything else from the bridge: like the USDT emulator, this is an
independent reading of the contract.

Streams and their callbacks (all on the "proposed" schema set):

============  =======================================  ==================================
stream        subscribe with                           node calls on the client
============  =======================================  ==================================
utxo          Init.makeUtxoTracing -> traceUtxoCache   UtxoCacheTrace.add/spend/uncache
net           Init.makeNetTracing -> traceNetMessages  NetMessageTrace.messages (batches)
chain         Init.makeChain -> handleNotifications    ChainNotifications.* (6 methods)
node_         Init.makeNode -> handleNotify*/          Notify*Callback.call,
notifications handleBannedListChanged                  BannedListChangedCallback.call
============  =======================================  ==================================
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias, get_args

from bridge.emulator.usdt import DEFAULT_STAGES, PingStage

__all__ = [
    "DEFAULT_STAGES",
    "STREAMS",
    "IpcScenario",
    "PingStage",
    "StreamName",
    "build_parser",
    "scenario_from_args",
]

StreamName: TypeAlias = Literal["utxo", "net", "chain", "node_notifications"]
STREAMS: Final[tuple[StreamName, ...]] = get_args(StreamName)

VersionName: TypeAlias = Literal["v30", "v31", "master", "proposed"]
VERSION_NAMES: Final[tuple[VersionName, ...]] = get_args(VersionName)

# Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH: the largest ping payload a node accepts.
MAX_PING_SIZE: Final = 4_000_000


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True, slots=True)
class IpcScenario:
    """What the node does; one field per command-line option (see :func:`build_parser`).

    ``streams`` are generated from the moment the run starts (right after READY, or at
    :meth:`IpcNode.go` with ``wait_start``); each ends after ``count`` events (0: no
    limit) or ``duration`` seconds (0: no limit), whichever comes first.
    ``counts``/``rates`` override ``count``/``rate`` per stream. ``rate`` is events/s;
    0 means flat out: a synchronous stream (utxo, chain, node_notifications) sends the next event as
    soon as the previous call returned; the net stream keeps the fastest subscriber's
    queue full, so it never waits for events and slower subscribers drop.

    ``ping`` replaces the net stream by RFC #35142's ping benchmark: one inbound "ping"
    and one outbound "pong" NetMessage (``ping_size``-byte payload, nonce first) per
    ping, through ``stages`` of ``rate`` pings/s for ``seconds`` each.

    With no streams, or with ``linger``, the node serves until stopped. The simulated
    chain gets a new block every ``block_interval`` seconds unless the chain or
    node_notifications stream drives it. ``malformed_after`` N: after N events, each
    stream sends one value a client's decoder must reject. ``garbage_after`` N: once N events were
    sent, the node writes garbage onto every connection and closes it.
    """

    version: VersionName = "proposed"
    streams: tuple[StreamName, ...] = ()
    count: int = 10
    counts: tuple[tuple[StreamName, int], ...] = ()
    rate: float = 0.0
    rates: tuple[tuple[StreamName, float], ...] = ()
    duration: float = 0.0
    ping: bool = False
    stages: tuple[PingStage, ...] = DEFAULT_STAGES
    ping_size: int = 8
    values: Literal["edge", "random"] = "edge"
    seed: int = 1
    wait_start: bool = False
    block_interval: float = 1.0
    malformed_after: int | None = None
    garbage_after: int | None = None
    linger: bool = False

    def __post_init__(self) -> None:
        if self.version not in VERSION_NAMES:
            raise ValueError(f"version must be one of {VERSION_NAMES}, not {self.version!r}")
        for name in (*self.streams, *(s for s, _ in self.counts), *(s for s, _ in self.rates)):
            if name not in STREAMS:
                raise ValueError(f"unknown stream {name!r}; streams are {STREAMS}")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams repeat: {self.streams}")
        if self.streams and self.version != "proposed":
            raise ValueError("streams need the proposed interfaces (version 'proposed')")
        if self.count < 0 or any(n < 0 for _, n in self.counts):
            raise ValueError("counts must be >= 0")
        if not self.rate >= 0 or any(not r >= 0 for _, r in self.rates):
            raise ValueError("rates must be >= 0")
        if not self.duration >= 0 or not self.block_interval >= 0:
            raise ValueError("duration and block_interval must be >= 0")
        if self.values not in ("edge", "random"):
            raise ValueError(f"values must be 'edge' or 'random', not {self.values!r}")
        if not 0 <= self.seed < 2**64:
            raise ValueError("seed must be in 0..2^64-1")
        if not 8 <= self.ping_size <= MAX_PING_SIZE:
            raise ValueError(f"ping_size must be in 8..{MAX_PING_SIZE} (8 is the nonce)")
        if not self.stages or any(not (s.rate >= 0 and s.seconds >= 0) for s in self.stages):
            raise ValueError(f"stages need rates and seconds >= 0: {self.stages}")
        if self.ping and "net" not in self.streams:
            raise ValueError("ping mode drives the net stream: add 'net' to streams")
        for option, value in (
            ("malformed_after", self.malformed_after),
            ("garbage_after", self.garbage_after),
        ):
            if value is not None and value < 0:
                raise ValueError(f"{option} must be >= 0")

    def count_for(self, stream: StreamName) -> int:
        """Events the stream sends before it ends (0: no limit)."""
        return dict(self.counts).get(stream, self.count)

    def rate_for(self, stream: StreamName) -> float:
        """Events per second of the stream (0: flat out)."""
        return dict(self.rates).get(stream, self.rate)

    def argv(self) -> list[str]:
        """The command-line options (without --socket, --record or --report)."""
        args = ["--version", self.version, "--count", str(self.count), "--rate", _num(self.rate)]
        if self.streams:
            args += ["--streams", ",".join(self.streams)]
        for name, n in self.counts:
            args += ["--count", f"{name}={n}"]
        for name, r in self.rates:
            args += ["--rate", f"{name}={_num(r)}"]
        args += ["--duration", _num(self.duration), "--block-interval", _num(self.block_interval)]
        if self.ping:
            args += ["--ping", "--ping-size", str(self.ping_size)]
        args += ["--stages", ",".join(f"{_num(s.rate)}:{_num(s.seconds)}" for s in self.stages)]
        args += ["--values", self.values, "--seed", str(self.seed)]
        if self.wait_start:
            args.append("--wait-start")
        if self.malformed_after is not None:
            args += ["--malformed", str(self.malformed_after)]
        if self.garbage_after is not None:
            args += ["--garbage-after", str(self.garbage_after)]
        if self.linger:
            args.append("--linger")
        return args


# --------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------


def _stages(text: str) -> tuple[PingStage, ...]:
    try:
        pairs = [part.split(":") for part in text.split(",") if part]
        return tuple(PingStage(float(rate), float(seconds)) for rate, seconds in pairs)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"stages are rate:seconds,... not {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The node's command line (``python -m bridge.emulator.ipc_node --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m bridge.emulator.ipc_node",
        description="Serve an emulated Bitcoin Core node's Cap'n Proto IPC interface on a "
        "Unix socket, with the proposed tracing/notification interfaces firing scripted "
        "events. Prints 'READY pid=<pid>' on stdout once the socket listens.",
        epilog="Example: --socket /tmp/node.sock --streams utxo,net --count 1000 "
        "--wait-start --record rec.jsonl --report report.json (then kill -USR1 <pid>).",
    )
    p.add_argument("--socket", required=True, help="Unix socket path to listen on.")
    p.add_argument(
        "--version", choices=VERSION_NAMES, default="proposed", help="Schema set to serve."
    )
    p.add_argument(
        "--streams", default="", help=f"Comma-separated streams to generate: {', '.join(STREAMS)}."
    )
    p.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="N|STREAM=N",
        help="Events per stream (0: unlimited); repeatable per stream.",
    )
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="R|STREAM=R",
        help="Events/s per stream (0: flat out); repeatable per stream.",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="Seconds each stream runs at most (0: no limit).",
    )
    p.add_argument(
        "--ping", action="store_true", help="Net stream = ping/pong pairs through --stages."
    )
    p.add_argument(
        "--stages",
        type=_stages,
        default=DEFAULT_STAGES,
        help="Ping stages rate:seconds,... (rate in pings/s, 0 = flat out).",
    )
    p.add_argument(
        "--ping-size", type=int, default=8, help="Ping payload bytes (8-byte nonce first)."
    )
    p.add_argument(
        "--values",
        choices=("edge", "random"),
        default="edge",
        help="Edge-case tables or seeded random values.",
    )
    p.add_argument("--seed", type=int, default=1, help="Seed for --values random and the chain.")
    p.add_argument(
        "--wait-start", action="store_true", help="Generate nothing until SIGUSR1 (after READY)."
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="Stop as on SIGTERM once the process that started this one is gone.",
    )
    p.add_argument(
        "--block-interval",
        type=float,
        default=1.0,
        help="Seconds between simulated blocks when no chain/node stream runs (0: never).",
    )
    p.add_argument(
        "--malformed",
        type=int,
        default=None,
        metavar="N",
        help="After N events, send one malformed value per stream.",
    )
    p.add_argument(
        "--garbage-after",
        type=int,
        default=None,
        metavar="N",
        help="After N events sent, write garbage onto every connection and close it.",
    )
    p.add_argument(
        "--linger",
        action="store_true",
        help="Keep serving after the streams ended, until SIGINT/SIGTERM.",
    )
    p.add_argument(
        "--record", type=Path, default=None, help="Write every event sent as JSON lines."
    )
    p.add_argument("--report", type=Path, default=None, help="Write the JSON report here at exit.")
    return p


def _per_stream(
    values: Sequence[str], default: float, kind: type[int] | type[float]
) -> tuple[float, list[tuple[StreamName, float]]]:
    overall = default
    per: list[tuple[StreamName, float]] = []
    for item in values:
        name, sep, number = item.partition("=")
        if not sep:
            overall = kind(item)
            continue
        if name not in STREAMS:
            raise ValueError(f"unknown stream {name!r} in {item!r}")
        per.append((name, kind(number)))
    return overall, per


def scenario_from_args(ns: argparse.Namespace) -> IpcScenario:
    """Turn parsed options into a scenario (ValueError on inconsistent options)."""
    count, counts = _per_stream(ns.count, 10, int)
    rate, rates = _per_stream(ns.rate, 0.0, float)
    streams = tuple(s for s in ns.streams.split(",") if s)
    return IpcScenario(
        version=ns.version,
        streams=streams,
        count=int(count),
        counts=tuple((s, int(n)) for s, n in counts),
        rate=float(rate),
        rates=tuple(rates),
        duration=ns.duration,
        ping=ns.ping,
        stages=ns.stages,
        ping_size=ns.ping_size,
        values=ns.values,
        seed=ns.seed,
        wait_start=ns.wait_start,
        block_interval=ns.block_interval,
        malformed_after=ns.malformed,
        garbage_after=ns.garbage_after,
        linger=ns.linger,
    )
