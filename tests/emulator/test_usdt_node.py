"""The emulated node: counts without a tracer, signals, building, records, and under BCC.

Without a tracer every semaphore stays 0, so call sites are hit but nothing fires. The
``bpf`` tests attach BCC exactly as Bitcoin Core's functional tests do (``USDT(pid=...)``,
``enable_probe``, ``BPF(text, usdt_contexts, cflags)``) and check that the kernel saw
exactly what the emulator says it fired, and with the values it says it passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator import (
    TRACEPOINTS,
    WALLET_TRACEPOINTS,
    EmulatorError,
    EmulatorReport,
    PingStage,
    RecordedEvent,
    UsdtNode,
    UsdtScenario,
    build_usdt_node,
    read_records,
)
from bridge.emulator.usdt import parse_record_line
from bridge.sources.usdt.session import retire_usdt

ALL = list(TRACEPOINTS)
CORE_ONLY = [name for name in ALL if name not in WALLET_TRACEPOINTS]


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_usdt_node()


@pytest.fixture(scope="module")
def binary_no_wallet() -> Path:
    return build_usdt_node(wallet=False)


def _run(binary: Path, scenario: UsdtScenario, record: Path | None = None) -> EmulatorReport:
    with UsdtNode(binary) as node:
        node.start(scenario, record)
        return node.wait(timeout=60)


# ------------------------------------------------------------------------------------
# No tracer attached: semaphores stay 0.
# ------------------------------------------------------------------------------------


def test_mixed_without_tracer_hits_but_never_fires(binary: Path, tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    report = _run(binary, UsdtScenario(count=7), record)
    assert report.mode == "mixed"
    assert report.wallet is True
    assert list(report.hits) == ALL
    assert list(report.fired) == ALL
    assert report.selected == tuple(ALL)
    assert report.hits == dict.fromkeys(ALL, 7)
    assert report.fired == dict.fromkeys(ALL, 0)
    assert not report.interrupted
    assert report.stages == []
    assert record.exists()
    assert record.read_bytes() == b"", "nothing fired, so nothing is recorded"


def test_tracepoint_globs_select(binary: Path) -> None:
    report = _run(binary, UsdtScenario(tracepoints=("net:*_message", "mempool:added"), count=5))
    chosen = {"net:inbound_message", "net:outbound_message", "mempool:added"}
    assert set(report.selected) == chosen
    assert report.hits == {name: 5 if name in chosen else 0 for name in ALL}


def test_random_values_run(binary: Path) -> None:
    report = _run(binary, UsdtScenario(count=100, values="random", seed=7, malformed=True))
    assert report.values == "random"
    assert report.seed == 7
    assert report.hits == dict.fromkeys(ALL, 100)


def test_no_wallet_build_lacks_coin_selection(binary_no_wallet: Path) -> None:
    report = _run(binary_no_wallet, UsdtScenario(count=3))
    assert report.wallet is False
    assert list(report.hits) == CORE_ONLY
    assert report.hits == dict.fromkeys(CORE_ONLY, 3)
    with pytest.raises(EmulatorError, match="selects nothing"):
        _run(binary_no_wallet, UsdtScenario(tracepoints=("coin_selection:*",)))


def test_ping_stages_without_tracer(binary: Path) -> None:
    stages = (PingStage(2000, 0.5), PingStage(0, 0.3))
    report = _run(binary, UsdtScenario(mode="ping", stages=stages))
    assert report.mode == "ping"
    paced, flat = report.stages
    assert (paced.rate, paced.seconds, flat.rate, flat.seconds) == (2000, 0.5, 0, 0.3)
    # 1 ms pacing ticks: within a few percent of rate x seconds
    assert 900 <= paced.pings <= 1010
    assert paced.elapsed_s == pytest.approx(0.5, abs=0.05)
    assert flat.elapsed_s == pytest.approx(0.3, abs=0.05)
    # flat out is a load and a branch per hit; even a slow shared VM does 10M pings/s
    assert flat.pings > 10 * paced.pings
    for stage in (paced, flat):
        assert stage.hits == 2 * stage.pings
        assert stage.events_fired == 0
        assert stage.thread_cpu_ns > 0
        assert stage.cpu_ns_per_hit is not None
        assert stage.cpu_ns_per_hit > 0
    pings = paced.pings + flat.pings
    assert report.hits["net:inbound_message"] == pings
    assert report.hits["net:outbound_message"] == pings
    assert sum(report.hits.values()) == 2 * pings
    assert report.total_fired == 0


def test_paced_mixed_mode_takes_its_time(binary: Path) -> None:
    # 20 tracepoints x 10 rounds = 200 events at 1000/s: about 0.2 s
    report = _run(binary, UsdtScenario(count=10, rate=1000))
    assert report.hits == dict.fromkeys(ALL, 10)
    assert 0.15 <= report.elapsed_s <= 1.0


def test_sigterm_mid_loop_still_reports(binary: Path, tmp_path: Path) -> None:
    with UsdtNode(binary) as node:
        node.start(UsdtScenario(loop=True), tmp_path / "record.jsonl")
        time.sleep(0.2)
        assert node.running
        report = node.stop()
    assert report.interrupted
    assert report.elapsed_s > 0.1
    hits = set(report.hits.values())
    assert min(hits) > 0
    assert max(hits) - min(hits) <= 1, "round-robin stops mid-round at most"
    assert report.total_fired == 0


def test_wait_start_holds_fire_until_go(binary: Path) -> None:
    with UsdtNode(binary) as node:
        node.start(UsdtScenario(count=4, wait_start=True))
        time.sleep(0.2)
        assert node.running, "waits for SIGUSR1"
        node.go()
        report = node.wait(timeout=10)
    assert report.hits == dict.fromkeys(ALL, 4)
    with UsdtNode(binary) as node:
        node.start(UsdtScenario(count=4, wait_start=True))
        report = node.stop()
    assert report.interrupted
    assert report.total_hits == 0


def test_no_process_left_behind(binary: Path) -> None:
    started: list[int] = []

    def fail_inside() -> None:
        with UsdtNode(binary) as node:
            node.start(UsdtScenario(loop=True))
            started.append(node.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    (pid,) = started
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_cli_rejects_bad_options(binary: Path) -> None:
    for args in (
        ["--mode", "bogus"],
        ["--count", "-1"],
        ["--stages", "10"],
        ["--payload-max", "4000001"],
    ):
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 2, args
        assert "usdt_node:" in proc.stderr
    # an error found only by the C side reaches Python with its message
    with pytest.raises(EmulatorError, match="selects nothing"):
        _run(binary, UsdtScenario(tracepoints=("nosuch:*",)))


def test_report_on_stdout_and_ready_on_stderr(binary: Path) -> None:
    proc = subprocess.run(
        [str(binary), "--count", "1", "--tracepoints", "mempool:*"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stderr.startswith("READY pid=")
    report = EmulatorReport.from_json(json.loads(proc.stdout))
    assert report.hits["mempool:rejected"] == 1


def test_scenario_validation_and_argv() -> None:
    with pytest.raises(ValueError, match="count"):
        UsdtScenario(count=-1)
    with pytest.raises(ValueError, match="payload_max"):
        UsdtScenario(payload_max=4_000_001)
    with pytest.raises(ValueError, match="tracepoints"):
        UsdtScenario(tracepoints=("net:*,mempool:*",))
    argv = UsdtScenario(
        tracepoints=("net:*", "mempool:added"),
        mode="ping",
        stages=(PingStage(1000, 0.5), PingStage(0, 2)),
        loop=True,
        malformed=True,
        wait_start=True,
    ).argv()
    assert argv[argv.index("--tracepoints") + 1] == "net:*,mempool:added"
    assert argv[argv.index("--stages") + 1] == "1000:0.5,0:2"
    assert {"--loop", "--malformed", "--wait-start"} <= set(argv)


def test_build_is_cached_and_atomic(tmp_path: Path) -> None:
    first = build_usdt_node(cache_dir=tmp_path)
    assert first.parent.parent == tmp_path / "emulator"
    assert len(first.parent.name) == 64  # sha256 hex of source and flags
    mtime = first.stat().st_mtime_ns
    assert build_usdt_node(cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == mtime, "reused, not rebuilt"
    other = build_usdt_node(cache_dir=tmp_path, wallet=False)
    assert other != first
    assert sorted(p.name for p in first.parent.iterdir()) == ["usdt_node"], "no temp files left"


def test_build_without_gcc_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmulatorError, match="gcc not found"):
        build_usdt_node(cache_dir=tmp_path)


def test_record_line_typing() -> None:
    line = json.dumps(
        {
            "tp": "mempool:removed",
            "args": ["00" * 31 + "ff", {"hex": "62ad"}, -1, 9223372036854775807, 2**64 - 1],
        }
    )
    event = parse_record_line(line)
    assert event.tp == "mempool:removed"
    assert event.args == (b"\x00" * 31 + b"\xff", b"b\xad", -1, 2**63 - 1, 2**64 - 1)
    assert event.raw[1] == {"hex": "62ad"}
    assert event.arg("reason") == b"b\xad"
    assert list(event.as_dict()) == ["txid", "reason", "vsize", "fee", "entry_time"]
    with pytest.raises(ValueError, match="unknown tracepoint"):
        parse_record_line('{"tp": "net:nope", "args": []}')
    with pytest.raises(ValueError, match="needs 3 arguments"):
        parse_record_line('{"tp": "mempool:added", "args": ["00"]}')
    with pytest.raises(ValueError, match="unexpected value"):
        parse_record_line('{"tp": "mempool:added", "args": ["00", true, 1]}')


# ------------------------------------------------------------------------------------
# With BCC attached (root only).
# ------------------------------------------------------------------------------------


def _bpf_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "USDT probes need Linux"
    if os.geteuid() != 0:
        return "needs root: BCC attaches uprobes and raises semaphores via /proc/<pid>/mem"
    if importlib.util.find_spec("bcc") is None:
        return "bcc not importable (install python3-bpfcc; the venv needs system site packages)"
    return None


_SKIP = _bpf_skip_reason()
requires_bpf = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

# What Bitcoin Core's functional tests pass (test_framework/util.py bpf_cflags()).
BPF_CFLAGS = ["-Wno-error=implicit-function-declaration", "-Wno-duplicate-decl-specifier"]

# C type for bpf_usdt_readarg: BCC rejects a destination whose size differs from the
# note's "N@", so these also check the widths the emulator declared.
_READ_TYPE = {
    "i64": "s64",
    "u64": "u64",
    "i32": "s32",
    "u32": "u32",
    "bool": "u8",
    "cstr": "u64",
    "hash32": "u64",
    "bytes": "u64",
}
# Longest string the emulator passes is 200 bytes; 256 with the NUL to spare.
_STR_BUF = 256
_U64 = 2**64


def _counting_program(names: list[str]) -> str:
    """The tiny program: one array slot per probe, incremented per hit."""
    body = [f"BPF_ARRAY(counts, u64, {len(names)});"]
    body += [
        f"int h_{i}(struct pt_regs *ctx) {{ counts.atomic_increment({i}); return 0; }}"
        for i in range(len(names))
    ]
    return "\n".join(body)


def _checksum_program(names: list[str]) -> str:
    """Counts per probe, plus a checksum of every argument as BPF reads it.

    Per event: sum over arguments k of (k + 1) * x_k mod 2^64, where x is the integer
    (sign-extended if signed), the string length including NUL, or the first 8 bytes of a
    hash (little-endian). Payload bytes are not read (msg_size covers the length).
    """
    n = len(names)
    out = [
        f"struct strbuf {{ char s[{_STR_BUF}]; }};",
        "BPF_PERCPU_ARRAY(scratch, struct strbuf, 1);",
        f"BPF_ARRAY(counts, u64, {n});",
        f"BPF_ARRAY(sums, u64, {n});",
        f"BPF_ARRAY(errors, u64, {n});",
    ]
    for i, name in enumerate(names):
        lines = [
            f"int h_{i}(struct pt_regs *ctx) {{",
            "  u64 acc = 0; int bad = 0; int zero = 0;",
            "  struct strbuf *buf = scratch.lookup(&zero);",
            "  if (!buf) return 0;",
        ]
        for k, spec in enumerate(TRACEPOINTS[name]):
            arg, weight = k + 1, k + 1
            lines.append(f"  {{ {_READ_TYPE[spec.kind]} v = 0;")
            lines.append(f"    if (bpf_usdt_readarg({arg}, ctx, &v) != 0) bad = 1;")
            if spec.kind == "cstr":
                lines.append(
                    "    long len = bpf_probe_read_user_str(buf->s, sizeof(buf->s), (void *)v);"
                )
                lines.append(f"    if (len < 0) bad = 1; acc += (u64)len * {weight}; }}")
            elif spec.kind == "hash32":
                lines.append("    u64 h = 0;")
                lines.append("    if (bpf_probe_read_user(&h, sizeof(h), (void *)v) != 0) bad = 1;")
                lines.append(f"    acc += h * {weight}; }}")
            elif spec.kind == "bytes":
                lines.append("  }")
            elif spec.kind in ("i64", "i32"):
                lines.append(f"    acc += (u64)(s64)v * {weight}; }}")
            else:
                lines.append(f"    acc += (u64)v * {weight}; }}")
        lines += [
            f"  counts.atomic_increment({i});",
            f"  sums.atomic_increment({i}, acc);",
            f"  if (bad) errors.atomic_increment({i});",
            "  return 0;",
            "}",
        ]
        out += lines
    return "\n".join(out)


def _checksum(event: RecordedEvent) -> int:
    """The same checksum as the BPF program, from the recorded values."""
    acc = 0
    for k, (spec, value) in enumerate(zip(TRACEPOINTS[event.tp], event.args, strict=True)):
        if spec.kind == "cstr":
            raw = value.encode() if isinstance(value, str) else value
            assert isinstance(raw, bytes)
            x = len(raw) + 1
        elif spec.kind == "hash32":
            assert isinstance(value, bytes)
            x = int.from_bytes(value[:8], "little")
        elif spec.kind == "bytes":
            x = 0
        else:
            assert isinstance(value, int)
            x = value
        acc = (acc + (k + 1) * x) % _U64
    return acc


def _table(bpf: Any, name: str, names: list[str]) -> dict[str, int]:
    return {names[k.value]: int(v.value) for k, v in bpf[name].items()}


def _attach(node: UsdtNode, names: list[str], program: str) -> tuple[Any, Any]:
    """Attach like Core's functional tests; the caller must keep the USDT object alive."""
    # imported here: only importable where the bpf tests run
    from bcc import BPF, USDT

    usdt = USDT(pid=node.pid)
    for i, name in enumerate(names):
        usdt.enable_probe(probe=name, fn_name=f"h_{i}")
    bpf = BPF(text=program, usdt_contexts=[usdt], cflags=BPF_CFLAGS)
    return usdt, bpf


@pytest.mark.bpf
@pytest.mark.slow
@requires_bpf
@pytest.mark.parametrize("values", ["edge", "random"])
def test_bcc_sees_exactly_what_fired(binary: Path, tmp_path: Path, values: str) -> None:
    names = ALL
    record = tmp_path / "record.jsonl"
    scenario = UsdtScenario(
        count=50, wait_start=True, values="random" if values == "random" else "edge", malformed=True
    )
    with UsdtNode(binary) as node:
        node.start(scenario, record)
        usdt, bpf = _attach(node, names, _checksum_program(names))
        try:
            node.go()
            report = node.wait(timeout=60)
            counts = _table(bpf, "counts", names)
            sums = _table(bpf, "sums", names)
            errors = _table(bpf, "errors", names)
        finally:
            bpf.cleanup()
            retire_usdt(usdt, [], lower=False)  # the node has exited
    assert report.hits == dict.fromkeys(names, 50)
    assert report.fired == dict.fromkeys(names, 50), "every semaphore was raised"
    assert counts == report.fired
    assert errors == dict.fromkeys(names, 0), "bpf_usdt_readarg accepted every width"

    events = list(read_records(record))
    assert Counter(e.tp for e in events) == Counter(report.fired)
    expected_sums: dict[str, int] = dict.fromkeys(names, 0)
    for event in events:
        expected_sums[event.tp] = (expected_sums[event.tp] + _checksum(event)) % _U64
    assert sums == expected_sums, "BPF read the same values the emulator recorded"

    messages = [e for e in events if e.tp.endswith("_message")]
    for message in messages:
        payload = message.arg("msg")
        assert isinstance(payload, bytes)
        assert message.arg("msg_size") == len(payload)
    hashes = [v for e in events for v in e.args if isinstance(v, bytes) and len(v) == 32]
    assert len(hashes) == len(set(hashes)), "hashes are distinct per event"
    assert any(isinstance(e.arg("wallet_name"), bytes) for e in events if e.tp.startswith("coin_"))
    if values == "edge":
        addr_lengths = {len(str(e.arg("peer_addr"))) for e in messages}
        assert {0, 1, 67, 68, 69, 100} <= addr_lengths
        sizes = {e.arg("msg_size") for e in messages}
        assert {0, 1, 7, 8, 255, 256, 257, 4095, 4096} <= sizes
        peer_ids = {e.arg("peer_id") for e in events if e.tp.startswith("net:")}
        assert {-(2**63), -1, 0, 1, 2**63 - 1} <= peer_ids
        u64s = {e.arg("existing_connections") for e in events if e.tp == "net:inbound_connection"}
        assert {0, 2**63 - 1, 2**64 - 1} <= u64s


@pytest.mark.bpf
@pytest.mark.slow
@requires_bpf
def test_bcc_counts_a_ping_flood(binary: Path, tmp_path: Path) -> None:
    names = ["net:inbound_message", "net:outbound_message"]
    record = tmp_path / "record.jsonl"
    stages = (PingStage(20_000, 0.5), PingStage(0, 0.1))
    with UsdtNode(binary) as node:
        node.start(UsdtScenario(mode="ping", stages=stages, wait_start=True), record)
        usdt, bpf = _attach(node, names, _counting_program(names))
        try:
            node.go()
            report = node.wait(timeout=60)
            counts = _table(bpf, "counts", names)
        finally:
            bpf.cleanup()
            retire_usdt(usdt, [], lower=False)  # the node has exited
    paced, flat = report.stages
    pings = paced.pings + flat.pings
    assert report.fired == {**dict.fromkeys(ALL, 0), **dict.fromkeys(names, pings)}
    assert counts == {name: report.fired[name] for name in names}
    assert paced.events_fired == 2 * paced.pings
    assert flat.events_fired == 2 * flat.pings
    assert 9_000 <= paced.pings <= 10_050
    events = list(read_records(record))
    assert Counter(e.tp for e in events) == Counter({name: pings for name in names})
    # one ping = "ping" in, "pong" out, same 8-byte nonce, same peer
    for ping, pong in zip(events[::2], events[1::2], strict=True):
        assert (ping.arg("msg_type"), pong.arg("msg_type")) == ("ping", "pong")
        assert ping.arg("msg") == pong.arg("msg")
        assert ping.arg("msg_size") == 8
        assert ping.arg("peer_id") == pong.arg("peer_id")
        assert ping.arg("conn_type") == "inbound"
