"""Build and drive the emulated Bitcoin Core node (``usdt_node.c``) from Python.

Why an emulator: no ``bitcoind`` exists where the bridge is developed, yet every test and
benchmark of the USDT source must trace a real process with real, semaphore-gated USDT
probes. ``usdt_node.c`` fires the same 20 tracepoints as Bitcoin Core (master
``d84fc352``), with Core's argument order and C types, and counts exactly how often each
fired. This module compiles it once per source/flags digest into a cache outside the
repository, starts it, hands over control signals, and parses its report and its record
of fired values into typed objects.

Like the C program, this module is an independent reading of the tracepoint contract in
``shared/reference/bitcoin-tracing.md`` section 1.2; it imports nothing else from the
project, so it can catch the bridge's mistakes instead of repeating them.

Typical use::

    with UsdtNode() as node:
        node.start(UsdtScenario(count=50, wait_start=True), record=tmp / "rec.jsonl")
        attach_tracer(node.pid)          # raise the semaphores, attach uprobes
        node.go()                        # SIGUSR1: start firing
        report = node.wait(timeout=30)
    assert report.fired["mempool:added"] == 50
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Self, TypeAlias

from bridge.emulator.process import EmulatorProcess

__all__ = [
    "DEFAULT_STAGES",
    "TRACEPOINTS",
    "WALLET_TRACEPOINTS",
    "ArgKind",
    "ArgSpec",
    "ArgValue",
    "EmulatorError",
    "EmulatorReport",
    "EmulatorTimeout",
    "PingStage",
    "RecordedEvent",
    "StageReport",
    "UsdtNode",
    "UsdtScenario",
    "build_usdt_node",
    "read_records",
]

SOURCE_PATH = Path(__file__).with_name("usdt_node.c")

# Same variable and default as the rest of tracebridge's caches (kept outside the repo so
# a build never shows up in ``git status``); duplicated, not imported, on purpose.
CACHE_ENV_VAR = "TRACEBRIDGE_CACHE_DIR"

COMPILER = "gcc"
# -O2 -g as Core's default RelWithDebInfo build, so probe arguments land in registers the
# way they do in a real bitcoind; -Werror keeps the C warning-free.
CFLAGS: tuple[str, ...] = ("-O2", "-g", "-Wall", "-Wextra", "-Werror")
NO_WALLET_FLAG = "-DTB_NO_WALLET"

# Compiling the ~1,600-line file takes about a second; a minute means something is wrong.
BUILD_TIMEOUT_S = 120.0
# The node prints READY right after parsing options and filling its tables (milliseconds).
READY_TIMEOUT_S = 10.0
# Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH (src/net.h); the emulator refuses more.
MAX_PAYLOAD = 4_000_000
# Highest value the C side's strtoull accepts for --seed and --count.
_U64_MAX = 2**64 - 1


class EmulatorError(RuntimeError):
    """The emulator could not be built, started, or did not end cleanly."""


class EmulatorTimeout(EmulatorError):
    """``UsdtNode.wait`` ran out of time; the process is still running (``stop`` it)."""


# --------------------------------------------------------------------------------------
# The tracepoint catalogue as the emulator fires it (reference doc section 1.2).
# --------------------------------------------------------------------------------------

ArgKind: TypeAlias = Literal["i64", "u64", "i32", "u32", "bool", "cstr", "hash32", "bytes"]
"""How one argument is passed and recorded.

``i64``/``u64``/``i32``/``u32``/``bool``: C integers, recorded as JSON numbers/booleans.
``cstr``: ``const char*``, recorded as a JSON string, or ``{"hex": ...}`` if not UTF-8.
``hash32``: ``const unsigned char*`` to 32 bytes (internal byte order), recorded as hex.
``bytes``: the P2P payload pointer, whose length is the preceding ``u64`` argument.
"""


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One positional tracepoint argument: its name in ``doc/tracing.md`` and its kind."""

    name: str
    kind: ArgKind


def _args(*pairs: tuple[str, ArgKind]) -> tuple[ArgSpec, ...]:
    return tuple(ArgSpec(name, kind) for name, kind in pairs)


_MESSAGE = _args(
    ("peer_id", "i64"),
    ("peer_addr", "cstr"),
    ("conn_type", "cstr"),
    ("msg_type", "cstr"),
    ("msg_size", "u64"),
    ("msg", "bytes"),
)
_CONNECTION = _args(
    ("peer_id", "i64"),
    ("addr", "cstr"),
    ("conn_type", "cstr"),
    ("network", "u32"),
    ("existing_connections", "u64"),
)
# time_established is int64 in the real bitcoind's probe notes (TicksSinceEpoch<seconds>);
# the reference doc says uint64.
_CLOSED = _args(
    ("peer_id", "i64"),
    ("addr", "cstr"),
    ("conn_type", "cstr"),
    ("network", "u32"),
    ("time_established", "i64"),
)
_UTXO = _args(
    ("txid", "hash32"),
    ("index", "u32"),
    ("height", "u32"),
    ("value", "i64"),
    ("is_coinbase", "bool"),
)

TRACEPOINTS: Mapping[str, tuple[ArgSpec, ...]] = MappingProxyType(
    {
        "net:inbound_message": _MESSAGE,
        "net:outbound_message": _MESSAGE,
        "net:inbound_connection": _CONNECTION,
        "net:outbound_connection": _CONNECTION,
        "net:evicted_inbound_connection": _CLOSED,
        "net:misbehaving_connection": _args(("peer_id", "i64"), ("reason", "cstr")),
        "net:closed_connection": _CLOSED,
        "validation:block_connected": _args(
            ("block_hash", "hash32"),
            ("height", "i32"),
            ("transactions", "u64"),
            ("inputs", "i32"),
            # int64 in the real bitcoind's probe notes; the reference doc says uint64
            ("sigops", "i64"),
            ("duration_ns", "i64"),
        ),
        "utxocache:flush": _args(
            ("duration_us", "i64"),
            ("mode", "u32"),
            ("coins_count", "u64"),
            ("coins_mem_usage", "u64"),
            ("is_flush_for_prune", "bool"),
        ),
        "utxocache:add": _UTXO,
        "utxocache:spent": _UTXO,
        "utxocache:uncache": _UTXO,
        "mempool:added": _args(("txid", "hash32"), ("vsize", "i32"), ("fee", "i64")),
        "mempool:removed": _args(
            ("txid", "hash32"),
            ("reason", "cstr"),
            ("vsize", "i32"),
            ("fee", "i64"),
            ("entry_time", "u64"),
        ),
        "mempool:replaced": _args(
            ("replaced_txid", "hash32"),
            ("replaced_vsize", "i32"),
            ("replaced_fee", "i64"),
            ("replaced_entry_time", "u64"),
            ("replacement_id", "hash32"),
            ("replacement_vsize", "i32"),
            ("replacement_fee", "i64"),
            ("replaced_by_transaction", "bool"),
        ),
        "mempool:rejected": _args(("txid", "hash32"), ("reason", "cstr")),
        "coin_selection:selected_coins": _args(
            ("wallet_name", "cstr"),
            ("algorithm", "cstr"),
            ("target", "i64"),
            ("waste", "i64"),
            ("selected_value", "i64"),
        ),
        "coin_selection:normal_create_tx_internal": _args(
            ("wallet_name", "cstr"), ("success", "bool"), ("fee", "i64"), ("change_pos", "i32")
        ),
        "coin_selection:attempting_aps_create_tx": _args(("wallet_name", "cstr")),
        "coin_selection:aps_create_tx_internal": _args(
            ("wallet_name", "cstr"),
            ("use_aps", "bool"),
            ("success", "bool"),
            ("fee", "i64"),
            ("change_pos", "i32"),
        ),
    }
)
"""Every tracepoint the emulator can fire, in Core's order, with its positional args."""

WALLET_TRACEPOINTS: frozenset[str] = frozenset(
    name for name in TRACEPOINTS if name.startswith("coin_selection:")
)
"""The probes absent from a wallet-less build (``build_usdt_node(wallet=False)``)."""


# --------------------------------------------------------------------------------------
# Building.
# --------------------------------------------------------------------------------------


def default_cache_root() -> Path:
    """Return ``$TRACEBRIDGE_CACHE_DIR`` or ``~/.cache/tracebridge``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tracebridge"


def build_usdt_node(*, wallet: bool = True, cache_dir: Path | None = None) -> Path:
    """Compile ``usdt_node.c`` (once) and return the path of the executable.

    The binary lives at ``<cache>/emulator/<sha256 of source and flags>/usdt_node``, where
    ``<cache>`` is ``cache_dir`` or :func:`default_cache_root`. Keying on the digest means
    an edited source or a different variant never reuses a stale build, and concurrent
    builders (pytest-xdist, two checkouts) agree on the path. The compiler writes a
    private temporary name that is renamed into place, so a reader never sees a
    half-written executable.

    ``wallet=False`` builds without the four ``coin_selection`` probes, like a Core build
    with ``-DENABLE_WALLET=OFF``.

    Raises :class:`EmulatorError` (with the compiler's output) if gcc or ``sys/sdt.h``
    is missing or the compile fails.
    """
    flags = [*CFLAGS] if wallet else [*CFLAGS, NO_WALLET_FLAG]
    try:
        source = SOURCE_PATH.read_bytes()
    except OSError as exc:
        raise EmulatorError(f"emulator source {SOURCE_PATH} is unreadable: {exc}") from exc
    digest = hashlib.sha256(source + b"\0" + " ".join([COMPILER, *flags]).encode()).hexdigest()
    out_dir = (cache_dir or default_cache_root()) / "emulator" / digest
    binary = out_dir / "usdt_node"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary

    compiler = shutil.which(COMPILER)
    if compiler is None:
        raise EmulatorError(
            f"{COMPILER} not found on PATH; it is needed to build the USDT emulator "
            "(Debian: apt-get install gcc systemtap-sdt-dev)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".usdt_node.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        cmd = [compiler, *flags, "-o", str(tmp), str(SOURCE_PATH)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EmulatorError(f"compiling the emulator timed out: {' '.join(cmd)}") from exc
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            if "sys/sdt.h" in output:
                raise EmulatorError(
                    "<sys/sdt.h> not found: install systemtap-sdt-dev to build the USDT "
                    f"emulator.\n$ {' '.join(cmd)}\n{output}"
                )
            raise EmulatorError(
                f"compiling the emulator failed (exit {proc.returncode}):\n"
                f"$ {' '.join(cmd)}\n{output}"
            )
        tmp.chmod(0o755)
        os.replace(tmp, binary)
    finally:
        tmp.unlink(missing_ok=True)
    return binary


# --------------------------------------------------------------------------------------
# Scenario (the CLI options).
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PingStage:
    """One ping-mode stage: ``rate`` pings per second (0 = unlimited) for ``seconds``."""

    rate: float
    seconds: float


# The C program's default: a rising load, ending flat out (RFC #35142's ping benchmark).
DEFAULT_STAGES: tuple[PingStage, ...] = (
    PingStage(1000, 2),
    PingStage(10_000, 2),
    PingStage(100_000, 2),
    PingStage(0, 2),
)


def _num(x: float) -> str:
    """Format for the C side's strtod/strtoull: integers plainly, floats round-tripping."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True, slots=True)
class UsdtScenario:
    """What the emulator should fire; one field per command-line option.

    ``tracepoints`` are fnmatch globs over ``context:event``. In mixed mode every selected
    tracepoint fires ``count`` times, round-robin (or until stopped with ``loop``), at
    ``rate`` events/s in total (0 = flat out). In ping mode each ping is one
    ``net:inbound_message`` "ping" plus one ``net:outbound_message`` "pong", run through
    ``stages``. ``values`` picks edge-case tables or seeded random values; ``malformed``
    makes some wallet names and misbehaving/rejected reasons invalid UTF-8. With
    ``wait_start`` nothing fires before :meth:`UsdtNode.go`.
    """

    tracepoints: tuple[str, ...] = ("*",)
    mode: Literal["mixed", "ping"] = "mixed"
    count: int = 10
    loop: bool = False
    rate: float = 0.0
    stages: tuple[PingStage, ...] = DEFAULT_STAGES
    values: Literal["edge", "random"] = "edge"
    seed: int = 1
    payload_max: int = 4096
    malformed: bool = False
    wait_start: bool = False

    def __post_init__(self) -> None:
        if not self.tracepoints or any(not p or "," in p for p in self.tracepoints):
            raise ValueError(
                f"tracepoints must be non-empty globs without commas: {self.tracepoints}"
            )
        if self.mode not in ("mixed", "ping"):
            raise ValueError(f"mode must be 'mixed' or 'ping', not {self.mode!r}")
        if self.values not in ("edge", "random"):
            raise ValueError(f"values must be 'edge' or 'random', not {self.values!r}")
        if not 0 <= self.count <= _U64_MAX:
            raise ValueError(f"count must be in 0..2^64-1, not {self.count}")
        if not 0 <= self.seed <= _U64_MAX:
            raise ValueError(f"seed must be in 0..2^64-1, not {self.seed}")
        if not 0 <= self.payload_max <= MAX_PAYLOAD:
            raise ValueError(f"payload_max must be in 0..{MAX_PAYLOAD}, not {self.payload_max}")
        if not self.rate >= 0:
            raise ValueError(f"rate must be >= 0, not {self.rate}")
        if not self.stages or any(not (s.rate >= 0 and s.seconds >= 0) for s in self.stages):
            raise ValueError(f"stages must be non-empty with rates and seconds >= 0: {self.stages}")

    def argv(self) -> list[str]:
        """Return the command-line options (without the binary, --record or --report)."""
        args = [
            "--tracepoints",
            ",".join(self.tracepoints),
            "--mode",
            self.mode,
            "--count",
            str(self.count),
            "--rate",
            _num(self.rate),
            "--stages",
            ",".join(f"{_num(s.rate)}:{_num(s.seconds)}" for s in self.stages),
            "--values",
            self.values,
            "--seed",
            str(self.seed),
            "--payload-max",
            str(self.payload_max),
        ]
        if self.loop:
            args.append("--loop")
        if self.malformed:
            args.append("--malformed")
        if self.wait_start:
            args.append("--wait-start")
        return args


# --------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageReport:
    """One ping stage as run: offered ``rate`` and planned ``seconds``, then what happened.

    ``thread_cpu_ns`` is the firing thread's CPU time in the stage (CLOCK_THREAD_CPUTIME_ID),
    so with a tracer attached it includes the uprobe traps and the BPF program.
    ``cpu_ns_per_hit`` divides it by ``hits`` (2 per ping); None if nothing was hit. At
    paced rates it also carries the pacer's timer wakeups (~1 per ms), so compare a
    traced stage with an untraced one at the same rate, not with zero.
    """

    rate: float
    seconds: float
    pings: int
    hits: int
    events_fired: int
    elapsed_s: float
    thread_cpu_ns: int
    cpu_ns_per_hit: float | None


@dataclass(frozen=True, slots=True)
class EmulatorReport:
    """The JSON report the emulator writes at exit.

    ``fired`` and ``hits`` name every tracepoint compiled in (20, or 16 without the
    wallet). ``hits`` counts call sites reached; ``fired`` counts hits whose semaphore was
    up, so the probe ran: exact, for ``delivered + lost == fired`` checks.
    ``interrupted`` is true when SIGINT/SIGTERM ended the run early.
    """

    pid: int
    mode: str
    values: str
    seed: int
    wallet: bool
    selected: tuple[str, ...]
    interrupted: bool
    fired: dict[str, int]
    hits: dict[str, int]
    elapsed_s: float
    cpu_s: float
    stages: list[StageReport] = field(default_factory=list)

    @property
    def total_fired(self) -> int:
        """Sum of ``fired`` over all tracepoints."""
        return sum(self.fired.values())

    @property
    def total_hits(self) -> int:
        """Sum of ``hits`` over all tracepoints."""
        return sum(self.hits.values())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmulatorReport:
        """Build from the parsed report; raises EmulatorError if a field is missing."""
        try:
            return cls(
                pid=int(data["pid"]),
                mode=str(data["mode"]),
                values=str(data["values"]),
                seed=int(data["seed"]),
                wallet=bool(data["wallet"]),
                selected=tuple(str(s) for s in data["selected"]),
                interrupted=bool(data["interrupted"]),
                fired={str(k): int(v) for k, v in data["fired"].items()},
                hits={str(k): int(v) for k, v in data["hits"].items()},
                elapsed_s=float(data["elapsed_s"]),
                cpu_s=float(data["cpu_s"]),
                stages=[
                    StageReport(
                        rate=float(s["rate"]),
                        seconds=float(s["seconds"]),
                        pings=int(s["pings"]),
                        hits=int(s["hits"]),
                        events_fired=int(s["events_fired"]),
                        elapsed_s=float(s["elapsed_s"]),
                        thread_cpu_ns=int(s["thread_cpu_ns"]),
                        cpu_ns_per_hit=(
                            None if s["cpu_ns_per_hit"] is None else float(s["cpu_ns_per_hit"])
                        ),
                    )
                    for s in data["stages"]
                ],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EmulatorError(f"malformed emulator report: {exc!r}") from exc


# --------------------------------------------------------------------------------------
# Records (--record).
# --------------------------------------------------------------------------------------

ArgValue: TypeAlias = int | bool | str | bytes
JsonArg: TypeAlias = int | bool | str | dict[str, str]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One fired event as recorded by ``--record``.

    ``raw`` holds the arguments exactly as in the file; ``args`` the same values typed by
    the argument's :data:`ArgKind`:

    ============  ==========================  =====================
    kind          in the file                 in ``args``
    ============  ==========================  =====================
    i64/u64/...   JSON number                 ``int``
    bool          ``true``/``false``          ``bool``
    hash32        hex, memory order           ``bytes`` (32, NOT reversed)
    bytes         hex                         ``bytes``
    cstr          JSON string                 ``str``
    cstr          ``{"hex": "..."}``          ``bytes`` (not valid UTF-8)
    ============  ==========================  =====================
    """

    tp: str
    raw: tuple[JsonArg, ...]
    args: tuple[ArgValue, ...]

    def arg(self, name: str) -> ArgValue:
        """Return the typed argument called ``name`` (as in :data:`TRACEPOINTS`)."""
        for spec, value in zip(TRACEPOINTS[self.tp], self.args, strict=True):
            if spec.name == name:
                return value
        raise KeyError(f"{self.tp} has no argument {name!r}")

    def as_dict(self) -> dict[str, ArgValue]:
        """Return the typed arguments by name, in positional order."""
        return {s.name: v for s, v in zip(TRACEPOINTS[self.tp], self.args, strict=True)}


def _typed(tp: str, spec: ArgSpec, raw: object) -> ArgValue:
    kind = spec.kind
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
    elif kind in ("i64", "u64", "i32", "u32"):
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
    elif kind in ("hash32", "bytes"):
        if isinstance(raw, str):
            return bytes.fromhex(raw)
    elif kind == "cstr":
        if isinstance(raw, str):
            return raw
        if isinstance(raw, dict) and isinstance(raw.get("hex"), str):
            return bytes.fromhex(raw["hex"])
    raise ValueError(f"{tp} argument {spec.name} ({kind}) has unexpected value {raw!r}")


def parse_record_line(line: str) -> RecordedEvent:
    """Parse one ``--record`` line; ValueError if it does not fit :data:`TRACEPOINTS`."""
    obj = json.loads(line)
    tp = obj.get("tp") if isinstance(obj, dict) else None
    if not isinstance(tp, str) or tp not in TRACEPOINTS:
        raise ValueError(f"record names an unknown tracepoint: {line[:120]!r}")
    raw = obj.get("args")
    specs = TRACEPOINTS[tp]
    if not isinstance(raw, list) or len(raw) != len(specs):
        raise ValueError(f"{tp} record needs {len(specs)} arguments: {line[:120]!r}")
    args = tuple(_typed(tp, s, r) for s, r in zip(specs, raw, strict=True))
    return RecordedEvent(tp=tp, raw=tuple(raw), args=args)


def read_records(path: Path) -> Iterator[RecordedEvent]:
    """Yield the events of a ``--record`` file in firing order (see :class:`RecordedEvent`)."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield parse_record_line(line)


# --------------------------------------------------------------------------------------
# The running node.
# --------------------------------------------------------------------------------------


class UsdtNode(EmulatorProcess[EmulatorReport]):
    """A running emulator process, usable as a context manager.

    ``start`` launches the binary and returns once it has printed ``READY pid=<pid>``
    (its semaphores exist and its tables are built, so a tracer can attach). The rest
    of the lifecycle (``go``, ``wait``, ``stop``, cleanup) is
    :class:`~bridge.emulator.process.EmulatorProcess`'s.
    """

    noun = "emulator"
    error = EmulatorError
    timeout_error = EmulatorTimeout

    def __init__(self, binary: Path | None = None, *, wallet: bool = True) -> None:
        super().__init__()
        self._binary = binary if binary is not None else build_usdt_node(wallet=wallet)

    @property
    def binary(self) -> Path:
        """The emulator executable (the path a tracer resolves probes in)."""
        return self._binary

    def start(
        self,
        scenario: UsdtScenario | None = None,
        record: Path | None = None,
        *,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> Self:
        """Launch the emulator and wait for its READY line; returns ``self``."""
        scenario = scenario if scenario is not None else UsdtScenario()
        self._make_workdir("usdt_node-")
        cmd = [str(self._binary), *scenario.argv()]
        if record is not None:
            cmd += ["--record", str(record)]
        self._launch(cmd, ready_timeout)
        return self

    def parse_report(self, data: Mapping[str, Any]) -> EmulatorReport:
        return EmulatorReport.from_json(data)
