"""``tracebridge demo`` end to end: the command a person runs, as a subprocess.

Real BPF, real Kafka, the emulated node firing in a loop: the demo must stop on its own
after --duration, print a summary in which every stream balances, exit 0, and leave
topics whose records, read back independently, prove the same.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.events.catalog import EVENTS
from tests.support.pipeline import read_topics, verdicts

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

TRACEBRIDGE = Path(sys.executable).with_name("tracebridge")
DURATION_S = 8
RATE = 1000
# Startup (BCC compile, topic creation) plus DURATION_S plus closing the books, with room
# for a loaded machine.
TIMEOUT_S = 240
ROW = re.compile(r"^(\S+:\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)((?:\s+[\d,]+){4})\s+(yes|NO)$")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_demo_runs_for_its_duration_and_every_stream_balances(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            str(TRACEBRIDGE),
            "demo",
            "-b",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
            "--duration",
            str(DURATION_S),
            "--no-view",
            "--rate",
            str(RATE),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout
    assert result.returncode == 0, f"{output}\n{result.stderr}"
    assert elapsed >= DURATION_S
    assert "\x1b[" not in output, "no ANSI codes when stdout is not a terminal"
    assert re.search(r"^demo \d\d:\d\d firing: ", output, re.MULTILINE), output

    rows = {m[1]: m for line in output.splitlines() if (m := ROW.match(line.rstrip()))}
    assert set(rows) == {spec.name for spec in EVENTS}, output
    fired_total = 0
    for stream, row in rows.items():
        node_fired, bpf_fired, delivered = number(row[2]), number(row[3]), number(row[4])
        lost = sum(number(v) for v in row[5].split())
        assert row[6] == "yes", stream
        assert node_fired == bpf_fired == delivered + lost, stream
        fired_total += node_fired
    assert f"All {len(EVENTS)} streams balanced" in output
    # The node fired at about RATE for DURATION_S (generously bounded: a loaded machine
    # paces late, never early).
    assert RATE * DURATION_S * 0.5 <= fired_total <= RATE * (DURATION_S + 2)

    records = read_topics(kafka_bootstrap, topic_prefix)
    checked = verdicts(records)
    assert {v.key[2] for v in checked} == {spec.name for spec in EVENTS}
    for verdict in checked:
        assert verdict.ok, verdict
        assert verdict.key[0] == "demo-node"
        assert verdict.delivered == number(rows[verdict.key[2]][4])
