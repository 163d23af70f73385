"""The small shared helpers: ports, output tails, the state file and process ownership."""

from __future__ import annotations

import functools
import socket
import sys
from pathlib import Path

import pytest

from bridge.localservice.output import log_tail, tail_text
from bridge.localservice.ports import ensure_port_free, resolve_ports
from bridge.localservice.process import carries_marker, run_captured, terminate_marked
from bridge.localservice.state import read_state, write_state
from tests.support.processes import started
from tests.unit.localservice.fake import FakeError, FakeState


def test_resolve_ports_fills_only_the_zeros_with_distinct_free_ports() -> None:
    ports = resolve_ports([None, 1234, None])
    assert ports[1] == 1234
    assert ports[0] != ports[2]
    assert all(0 < port < 65536 for port in ports)


def test_a_busy_port_raises_the_given_error_naming_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(FakeError, match=f"local thing: its HTTP port {port} on 127"):
            ensure_port_free(port, "HTTP", "thing", FakeError)


def test_tail_text_keeps_the_last_lines_without_colour() -> None:
    text = "\n".join(f"\x1b[1;31mline {i}\x1b[m" for i in range(50))
    assert tail_text(text, lines=2) == "line 48\nline 49"
    assert tail_text("  \n") == "(no output)"


def test_log_tail_labels_the_file_or_says_it_is_missing(tmp_path: Path) -> None:
    log = tmp_path / "x.out"
    assert log_tail(log) == f"({log} is missing)"
    log.write_text("boom\n")
    assert log_tail(log) == f"Last lines of {log}:\nboom"


def test_state_round_trip_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = FakeState(pid=5, port=6, cmdline_marker="m", endpoint="a")
    write_state(path, state)
    assert read_state(path, FakeState) == state
    assert state.ports == (6,)
    assert state.address == "a"
    assert read_state(tmp_path / "missing.json", FakeState) is None
    path.write_text('{"pid": 5, "port": "6", "cmdline_marker": "m", "endpoint": "a"}')
    assert read_state(path, FakeState) is None


def test_run_captured_merges_the_streams() -> None:
    result = run_captured(
        [sys.executable, "-c", "import sys; print('out'); sys.stderr.write('err\\n')"], 30
    )
    assert result.returncode == 0
    assert "out" in result.stdout
    assert "err" in result.stdout


def test_terminate_marked_stops_only_a_marked_process(tmp_path: Path) -> None:
    marker = f"--marker={tmp_path}"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = started([*sleeper, marker])
    unmarked = started(sleeper)
    try:
        assert carries_marker(marked.pid, marker)
        assert not carries_marker(unmarked.pid, marker)
        stop = functools.partial(
            terminate_marked, what="sleeper", log_path=tmp_path / "log", error=FakeError
        )

        assert stop(unmarked.pid, marker, 5, unmarked) is False
        assert unmarked.poll() is None
        assert stop(marked.pid, marker, 5, marked) is True
        assert marked.poll() is not None
    finally:
        for proc in (marked, unmarked):
            proc.kill()
            proc.wait()
