"""``tracebridge demo`` end to end: the command a person runs, as a subprocess.

Real BPF, real Kafka, the emulated node firing in a loop: the demo must stop on its own
after --duration, print a summary in which every stream balances, exit 0, and leave
topics whose records, read back independently, prove the same.
"""

from __future__ import annotations

import re

import pytest

from bridge.events.catalog import EVENTS
from tests.support.demo import run_demo
from tests.support.pipeline import read_topics, verdicts

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

DURATION_S = 8
RATE = 1000
ROW = re.compile(r"^(\S+:\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)((?:\s+[\d,]+){4})\s+(yes|NO)$")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_demo_runs_for_its_duration_and_every_stream_balances(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    output = run_demo(kafka_bootstrap, topic_prefix, "usdt", duration_s=DURATION_S, rate=RATE)

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
