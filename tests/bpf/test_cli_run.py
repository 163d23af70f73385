"""`tracebridge run` as a user runs it: a process, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bridge.emulator import UsdtNode, UsdtScenario
from bridge.resources import REPO_ROOT
from bridge.status import StatusFile
from tests.support.pipeline import read_topics, verdicts

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

TRACEBRIDGE = REPO_ROOT / ".venv" / "bin" / "tracebridge"


def test_run_streams_until_sigint_and_closes_the_books(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    status = tmp_path / "status.json"
    with UsdtNode() as node:
        node.start(UsdtScenario(loop=True, rate=5000, wait_start=True))
        bridge = subprocess.Popen(
            [
                str(TRACEBRIDGE),
                "run",
                "--pid",
                str(node.pid),
                "-b",
                kafka_bootstrap,
                "--topic-prefix",
                topic_prefix,
                "--status-file",
                str(status),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        StatusFile(status).wait_for(
            "attached", timeout=60, still_running=lambda: bridge.poll() is None
        )
        node.go()
        time.sleep(3)
        bridge.send_signal(signal.SIGINT)  # the node keeps firing: probes are detached first
        _, stderr = bridge.communicate(timeout=120)
        node.stop()
    assert bridge.returncode == 0, stderr
    assert "Traceback" not in stderr
    final = json.loads(status.read_text())
    assert final["state"] == "stopped"
    fired = sum(book["fired"] for book in final["books"])
    assert fired > 5000
    checked = verdicts(read_topics(kafka_bootstrap, topic_prefix))
    assert len(checked) == 20
    assert all(v.ok for v in checked)


def test_run_on_a_pid_without_tracepoints_says_so_once_and_fails(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A node built without -DWITH_USDT=ON (here: any other program) will never grow
    probes; waiting for it, after a warning per tracepoint, helped nobody."""
    untraceable = subprocess.Popen(["sleep", "300"])
    try:
        bridge = subprocess.run(
            [
                str(TRACEBRIDGE),
                "run",
                "--pid",
                str(untraceable.pid),
                "-b",
                kafka_bootstrap,
                "--topic-prefix",
                topic_prefix,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        untraceable.kill()
        untraceable.wait()
    assert bridge.returncode == 1, bridge.stderr
    assert "Traceback" not in bridge.stderr
    complaints = [line for line in bridge.stderr.splitlines() if "tracepoint" in line.lower()]
    assert len(complaints) == 1, bridge.stderr
    assert f"process {untraceable.pid}" in complaints[0]
    assert "no USDT tracepoints" in complaints[0]
    assert "-DWITH_USDT=ON" in complaints[0]
