"""``Encoder.unsent``: records dropped after encoding leave a gap that is still reported.

A record's lost_before is the topic's only report of the losses in front of it. When
the bridge drops encoded records (the producer's queue stayed full), their reports must
move to the next record with the drops themselves, or the audit finds seqs that nothing
reports (see tests/bpf/test_backpressure_audit.py for the same through a real bridge).
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.codec.single_object import committed_schemas
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import SourceKind
from tests.support.raw_records import build_record
from tests.unit.codec.test_native_encoder import fresh_encoder

SPEC = BY_NAME["mempool:added"]
VALUES = {"txid": bytes(32), "vsize": 1, "fee": 2}


def envelope(encoded: tuple[int, bytes, int]) -> dict[str, Any]:
    value: dict[str, Any] = committed_schemas().decode(encoded[1])[1]["envelope"]
    return value


def test_the_next_record_reports_the_dropped_ones_and_what_they_reported() -> None:
    encoder = fresh_encoder()

    def encode(seq: int, lost_before: int = 0) -> tuple[int, bytes, int]:
        good, _ = encoder.encode_one(build_record(SPEC, VALUES, seq=seq, lost_before=lost_before))
        return good[0]

    assert envelope(encode(1))["lost_before"] == 0
    dropped = [encode(4, lost_before=2), encode(5), encode(7, lost_before=1)]  # 2, 3, 6 lost
    encoder.unsent(dropped)  # 4, 5 and 7 never leave
    after = envelope(encode(8))
    assert after["lost_before"] == 6  # seqs 2..7: the whole gap, right after it
    assert after["lost"] == {"kernel": 3, "bridge": 3, "producer": 0, "node": 0}


def test_a_record_of_another_session_is_refused_and_nothing_counted() -> None:
    encoder = fresh_encoder()
    good, _ = encoder.encode_one(build_record(SPEC, VALUES, seq=1))
    stale = good[0]
    encoder.set_session("node-a", SourceKind.USDT, "another-session", 0)
    fresh, _ = encoder.encode_one(build_record(SPEC, VALUES, seq=1))
    with pytest.raises(ValueError, match="record 1 is not an encoded record of type"):
        encoder.unsent([fresh[0], stale])
    assert encoder.counters(SPEC.tp_id)[3:] == (0, 0, 0, 0, 0)  # pending and losses
    with pytest.raises(ValueError):
        encoder.unsent([(SPEC.tp_id, fresh[0][1][:12], 0)])  # cut short
