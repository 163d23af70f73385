"""The local Apicurio registry: real JVM, real ports, the same ownership rules as the broker.

The session registry (``registry_url``) covers readiness; the tests that need a registry
of their own are about the lifecycle: the CLI across processes, adoption, refusing to
signal a process that is not ours, and refusing a busy port before any JVM starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bridge.localregistry import LocalRegistryError
from bridge.localregistry.registry import STATE_FILE, LocalRegistry, registry_answers

pytestmark = pytest.mark.registry

# Generous next to the ~3.5 s a registry start takes on 2 cores.
START_TIMEOUT_S = 120.0


def _cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bridge.localregistry``: each command in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bridge.localregistry", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S + 30,
        check=False,
    )


def test_session_registry_serves_the_ccompat_api(registry_url: str) -> None:
    assert registry_url.endswith("/apis/ccompat/v7")
    with urllib.request.urlopen(f"{registry_url}/subjects", timeout=10) as response:
        assert response.status == 200
        assert isinstance(json.loads(response.read()), list)
    assert registry_answers(registry_url)


def test_cli_start_status_stop_across_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "registry"
    started = _cli(run_dir, "start", "--port", "0")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    try:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/apis/ccompat/v7")
        assert registry_answers(url)
        state = json.loads((run_dir / STATE_FILE).read_text())
        assert state["url"] == url
        # The marker is what /proc shows for our JVM and nothing else.
        cmdline = Path(f"/proc/{state['pid']}/cmdline").read_bytes().split(b"\0")
        assert state["cmdline_marker"].encode() in cmdline

        status = _cli(run_dir, "status")
        assert status.returncode == 0
        assert f"pid={state['pid']}" in status.stdout

        # A second start adopts the running registry instead of launching another JVM.
        again = _cli(run_dir, "start", "--port", "0")
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().splitlines()[-1] == url
        assert json.loads((run_dir / STATE_FILE).read_text())["pid"] == state["pid"]
    finally:
        stopped = _cli(run_dir, "stop")
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    assert not (run_dir / STATE_FILE).exists()
    assert not registry_answers(url, timeout=1)
    after = _cli(run_dir, "status")
    assert after.returncode == 1
    assert "not running" in after.stdout


def test_from_run_dir_and_context_manager(tmp_path: Path) -> None:
    with LocalRegistry(tmp_path / "r", port=0) as registry:
        other = LocalRegistry.from_run_dir(tmp_path / "r")
        status = other.status()
        assert status.running
        assert status.url == registry.url
        assert other.url == registry.url
    assert not LocalRegistry.from_run_dir(tmp_path / "r").status().running


def test_stop_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    """A stale registry.json naming someone else's pid is cleared, not acted on."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = tmp_path / "r"
        run_dir.mkdir()
        registry = LocalRegistry(run_dir, port=0)
        (run_dir / STATE_FILE).write_text(
            json.dumps(
                {
                    "pid": bystander.pid,
                    "port": 1,
                    "management_port": 2,
                    "url": "http://127.0.0.1:1/apis/ccompat/v7",
                    "cmdline_marker": registry.marker,
                    "apicurio_version": "3.3.3",
                    "java": "/bin/false",
                    "started_at": "2026-01-01T00:00:00+00:00",
                }
            )
        )
        assert not registry.status().running
        assert registry.stop() is False
        assert bystander.poll() is None, "the bystander must still be alive"
        assert not (run_dir / STATE_FILE).exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_busy_port_is_refused_before_any_jvm_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        registry = LocalRegistry(tmp_path / "r", port=port)
        with pytest.raises(LocalRegistryError, match=f"HTTP port {port}"):
            registry.start(timeout=START_TIMEOUT_S)
    assert not (tmp_path / "r" / STATE_FILE).exists()


def test_java_for_the_registry_is_21_or_newer() -> None:
    from bridge.localregistry.java import MIN_JAVA_MAJOR, ensure_registry_java, java_major

    java = ensure_registry_java()
    major = java_major(java)
    assert major is not None
    assert major >= MIN_JAVA_MAJOR
    assert os.access(java, os.X_OK)
