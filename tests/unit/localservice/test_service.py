"""``LocalService``'s lifecycle on a fake service (a Python TCP server): no JVM needed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.localservice.process import cmdline, pid_alive
from tests.unit.localservice.fake import (
    STATE_FILE,
    FakeError,
    FakeService,
    FakeState,
    FakeStatus,
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[FakeService]:
    fake = FakeService(tmp_path / "run")
    try:
        yield fake
    finally:
        fake.stop(timeout=5)


def test_start_status_stop(service: FakeService) -> None:
    service.start(timeout=30)
    status = service.status()
    assert status == FakeStatus(running=True, pid=status.pid, address=service.address)
    assert status.pid is not None
    assert service.marker in (cmdline(status.pid) or [])
    state = json.loads(service.state_file.read_text())
    assert state["pid"] == status.pid
    assert state["port"] == service.port

    assert service.stop(timeout=5) is True

    assert not pid_alive(status.pid)
    assert not service.state_file.exists()
    assert service.status() == FakeStatus(running=False, pid=None, address=None)
    assert service.stop() is False


def test_second_object_adopts_and_from_run_dir_finds_it(service: FakeService) -> None:
    service.start(timeout=30)
    pid = service.status().pid

    other = FakeService(service.run_dir)
    other.start(timeout=30)
    found = FakeService.from_run_dir(service.run_dir)

    assert other.status().pid == pid
    assert other.address == service.address
    assert found.address == service.address
    assert found.stop(timeout=5) is True
    assert not service.status().running


def test_adopting_with_another_port_is_refused(service: FakeService) -> None:
    service.start(timeout=30)
    other_port = service.port + 1 if service.port < 65535 else service.port - 1

    with pytest.raises(FakeError, match=f"client port {service.port}, not {other_port}"):
        FakeService(service.run_dir, port=other_port).start(timeout=30)


def test_restart_keeps_the_chosen_port(service: FakeService) -> None:
    service.start(timeout=30)
    port = service.port
    service.stop(timeout=5)
    service.start(timeout=30)
    assert service.port == port


def test_port_is_unknown_before_start(tmp_path: Path) -> None:
    with pytest.raises(FakeError, match=r"chosen at start\(\)"):
        _ = FakeService(tmp_path).address


def test_from_an_empty_run_dir_is_stopped(tmp_path: Path) -> None:
    found = FakeService.from_run_dir(tmp_path / "nothing")
    assert not found.status().running
    assert found.stop() is False


def test_process_that_dies_reports_its_status_and_output(tmp_path: Path) -> None:
    service = FakeService(tmp_path, script="import sys; print('no config'); sys.exit(3)")

    with pytest.raises(FakeError, match="exited with status 3") as info:
        service.start(timeout=30)

    assert "no config" in str(info.value)
    assert not service.status().running
    assert not service.state_file.exists()


def test_service_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    sleeper = "import time; time.sleep(60)"
    service = FakeService(tmp_path, script=sleeper)

    with pytest.raises(
        FakeError, match=r"was not ready at 127\.0\.0\.1:\d+ in time: the port is closed"
    ):
        service.start(timeout=1)

    assert not service.state_file.exists()
    assert not service.status().running


def test_busy_port_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(FakeError, match=f"fake service: its client port {port} on"):
            FakeService(tmp_path, port=port).start(timeout=30)

    assert not (tmp_path / STATE_FILE).exists()


def test_a_foreign_pid_is_never_signalled(tmp_path: Path) -> None:
    foreign = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        service = FakeService(tmp_path)
        state = {"pid": foreign.pid, "port": 1, "cmdline_marker": service.marker, "endpoint": ""}
        (tmp_path / STATE_FILE).write_text(json.dumps(state))

        assert not service.status().running
        assert service.stop() is False

        assert foreign.poll() is None
        assert not (tmp_path / STATE_FILE).exists()
    finally:
        foreign.kill()
        foreign.wait()


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"pid": "1", "port": 1, "cmdline_marker": "x", "endpoint": ""}', "{}"],
)
def test_an_unreadable_state_file_is_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    service = FakeService.from_run_dir(tmp_path)
    assert not service.status().running
    service.start(timeout=30)
    try:
        assert service.status().running
    finally:
        service.stop(timeout=5)


def test_context_manager_stops_on_exit(tmp_path: Path) -> None:
    with FakeService(tmp_path) as service:
        pid = service.status().pid
        assert pid is not None
    assert not pid_alive(pid)
    assert not service.status().running


class _StatelessService(FakeService):
    """Fails while describing its freshly launched process, after noting its pid."""

    launched: list[int] = []  # noqa: RUF012 (a test's record, reset by the test)

    def _new_state(self, pid: int, ports: tuple[int, ...]) -> FakeState:
        self.launched.append(pid)
        raise RuntimeError("cannot describe it")


def test_a_failure_before_the_state_is_written_still_stops_the_process(tmp_path: Path) -> None:
    _StatelessService.launched = []
    service = _StatelessService(tmp_path)

    with pytest.raises(RuntimeError, match="cannot describe it"):
        service.start(timeout=30)

    [pid] = _StatelessService.launched
    assert not pid_alive(pid)
    assert not service.state_file.exists()
