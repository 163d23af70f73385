"""Completeness from the topics alone: duplicates, gaps, and the final ledger."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.verify import Evidence, StreamVerdict, verify_records

NODE, SESSION, STREAM = "node-1", "session-1", "mempool:added"
HEARTBEAT = "tracebridge.bridge.Heartbeat"
DEAD_LETTER = "tracebridge.bridge.DeadLetter"
ADDED = "tracebridge.mempool.Added"


def event(
    seq: int, lost_before: int = 0, stream: str = STREAM, session: str = SESSION
) -> dict[str, Any]:
    return {
        "envelope": {
            "node_id": NODE,
            "session_id": session,
            "stream": stream,
            "seq": seq,
            "lost_before": lost_before,
        },
        "txid": bytes(32),
    }


def book(
    fired: int, acked: int, stream: str = STREAM, in_doubt: int | None = None, **lost: int
) -> dict[str, Any]:
    totals = {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
    totals.update(lost)
    out = {"stream": stream, "fired": fired, "acked": acked, "lost": totals}
    if in_doubt is not None:  # absent: a ledger from before in_doubt existed
        out["in_doubt"] = in_doubt
    return out


def heartbeat(
    kind: str, *books: dict[str, Any], session: str = SESSION, seq: int = 1
) -> dict[str, Any]:
    return {
        "node_id": NODE,
        "session_id": session,
        "kind": kind,
        "heartbeat_seq": seq,
        "streams": list(books),
    }


def only(verdicts: list[StreamVerdict]) -> StreamVerdict:
    assert len(verdicts) == 1
    return verdicts[0]


def judge(events: list[dict[str, Any]], *beats: dict[str, Any]) -> StreamVerdict:
    evidence = Evidence()
    for value in events:
        evidence.add(ADDED, value)
    for beat in beats:
        evidence.add(HEARTBEAT, beat)
    return only(evidence.verdicts())


def test_complete_stream_is_ok() -> None:
    verdict = judge([event(s) for s in range(1, 6)], heartbeat("SESSION_END", book(5, 5)))
    assert verdict.key == (NODE, SESSION, STREAM)
    assert verdict.ok
    assert (verdict.delivered, verdict.duplicates, verdict.missing) == (5, 0, 0)
    assert (verdict.fired, verdict.acked, verdict.lost) == (5, 5, 0)
    assert verdict.unexplained == 0
    assert verdict.final


def test_records_arriving_out_of_order_are_fine() -> None:
    verdict = judge([event(s) for s in (3, 1, 5, 2, 4)], heartbeat("SESSION_END", book(5, 5)))
    assert verdict.ok


def test_losses_stated_by_the_ledger_explain_the_gap() -> None:
    events = [event(1), event(2), event(5, lost_before=2)]
    verdict = judge(events, heartbeat("SESSION_END", book(5, 3, kernel=2)))
    assert verdict.ok
    assert verdict.missing == 2
    assert verdict.lost == 2
    assert verdict.unexplained == 0
    assert verdict.lost_before_sum == 2


def test_losses_across_stages_add_up() -> None:
    events = [event(1), event(4, lost_before=2)]  # seq 6 lost at the tail
    ledger = book(6, 2, kernel=1, bridge=1, producer=1, node=1)
    verdict = judge(events, heartbeat("SESSION_END", ledger))
    assert verdict.missing == 4
    assert verdict.lost == 4
    assert verdict.ok


def test_duplicates_are_detected() -> None:
    events = [event(1), event(2), event(2), event(3)]
    verdict = judge(events, heartbeat("SESSION_END", book(3, 3)))
    assert verdict.duplicates == 1
    assert verdict.delivered == 3
    assert not verdict.ok


def test_unexplained_gap_is_detected() -> None:
    events = [event(1), event(2), event(4), event(5)]
    verdict = judge(events, heartbeat("SESSION_END", book(5, 4)))
    assert verdict.missing == 1
    assert verdict.unexplained == 1
    assert not verdict.ok


def test_gap_larger_than_the_stated_loss_is_detected() -> None:
    events = [event(1), event(5, lost_before=3)]
    verdict = judge(events, heartbeat("SESSION_END", book(5, 2, kernel=2)))
    assert verdict.missing == 3
    assert verdict.unexplained == 1
    assert not verdict.ok


def test_missing_tail_is_detected() -> None:
    verdict = judge([event(1), event(2)], heartbeat("SESSION_END", book(4, 4)))
    assert verdict.missing == 2
    assert not verdict.ok


def test_acked_but_not_delivered_is_detected() -> None:
    """The ledger claims more acks than records present, with no loss to explain it."""
    verdict = judge([event(1), event(2)], heartbeat("SESSION_END", book(2, 3)))
    assert verdict.delivered != verdict.acked
    assert not verdict.ok


def test_overstated_loss_is_detected() -> None:
    verdict = judge([event(1), event(2), event(3)], heartbeat("SESSION_END", book(3, 3, bridge=1)))
    assert verdict.unexplained == -1
    assert not verdict.ok


@pytest.mark.parametrize("written", [0, 1, 2])
def test_records_in_doubt_are_settled_by_the_topic(written: int) -> None:
    """Two records timed out after they were sent (seq 3 and 4): however many the
    broker wrote, the seqs present and missing account for them exactly."""
    events = [event(1), event(2), *(event(3 + i) for i in range(written)), event(5)]
    verdict = judge(events, heartbeat("SESSION_END", book(5, 3, in_doubt=2)))
    assert verdict.found_in_doubt == written
    assert verdict.missing == 2 - written
    assert verdict.unexplained == 0
    assert verdict.ok


def test_in_doubt_does_not_excuse_more_than_it_states() -> None:
    """In doubt settles at most as many records as it states, in either direction."""
    missing_two = judge(
        [event(1), event(4)], heartbeat("SESSION_END", book(4, 1, in_doubt=1, producer=2))
    )
    assert missing_two.unexplained == 0
    assert missing_two.ok  # seq 2 and 3 lost at the producer; the one in doubt was written
    too_many = judge(
        [event(1), event(2), event(3)], heartbeat("SESSION_END", book(4, 1, in_doubt=1, producer=2))
    )
    assert too_many.found_in_doubt == 2
    assert not too_many.ok


def test_a_loss_claimed_for_a_record_in_the_topic_is_detected() -> None:
    """A ledger from before in-doubt existed counted a record that timed out after it
    was sent as lost; when the broker wrote it after all, the books do not balance."""
    verdict = judge(
        [event(1), event(2), event(3)], heartbeat("SESSION_END", book(3, 2, producer=1))
    )
    assert not verdict.ok


def test_late_periodic_heartbeat_does_not_replace_session_end() -> None:
    events = [event(s) for s in range(1, 4)]
    final = heartbeat("SESSION_END", book(3, 3), seq=5)
    late = heartbeat("PERIODIC", book(2, 1), seq=4)  # delivered after the final one
    verdict = judge(events, final, late)
    assert verdict.final
    assert (verdict.fired, verdict.acked) == (3, 3)
    assert verdict.ok


def test_session_end_replaces_an_earlier_periodic() -> None:
    events = [event(s) for s in range(1, 4)]
    verdict = judge(events, heartbeat("PERIODIC", book(2, 1)), heartbeat("SESSION_END", book(3, 3)))
    assert verdict.final
    assert verdict.fired == 3
    assert verdict.ok


def test_only_periodic_heartbeats_is_not_ok() -> None:
    verdict = judge([event(1), event(2)], heartbeat("PERIODIC", book(2, 2)))
    assert not verdict.final
    assert verdict.fired == 2
    assert not verdict.ok


def test_missing_ledger_is_not_ok() -> None:
    verdict = judge([event(1), event(2), event(4)])
    assert not verdict.ok
    assert not verdict.final
    assert verdict.fired is None
    assert verdict.acked is None
    assert verdict.lost is None
    assert verdict.unexplained is None
    assert verdict.missing == 1  # up to the highest seq seen
    assert verdict.delivered == 3


def test_ledger_for_a_stream_without_records() -> None:
    verdict = judge([], heartbeat("SESSION_END", book(2, 0, kernel=2)))
    assert verdict.delivered == 0
    assert verdict.missing == 2
    assert verdict.ok
    assert not judge([], heartbeat("SESSION_END", book(2, 0))).ok


def test_streams_and_sessions_are_judged_separately() -> None:
    records: list[tuple[str, dict[str, Any]]] = [
        (ADDED, event(1)),
        (ADDED, event(2)),
        (ADDED, event(1, session="session-2")),
        ("tracebridge.mempool.Rejected", event(1, stream="mempool:rejected")),
        (HEARTBEAT, heartbeat("SESSION_END", book(2, 2), book(1, 1, "mempool:rejected"))),
        (HEARTBEAT, heartbeat("SESSION_END", book(2, 1), session="session-2")),
    ]
    verdicts = {v.key: v for v in verify_records(records)}
    assert set(verdicts) == {
        (NODE, SESSION, STREAM),
        (NODE, SESSION, "mempool:rejected"),
        (NODE, "session-2", STREAM),
    }
    assert verdicts[(NODE, SESSION, STREAM)].ok
    assert verdicts[(NODE, SESSION, "mempool:rejected")].ok
    second = verdicts[(NODE, "session-2", STREAM)]
    assert not second.ok
    assert second.missing == 1


def test_dead_letters_are_not_events() -> None:
    dead = {"node_id": NODE, "session_id": SESSION, "stream": STREAM, "seq": 2, "raw": b""}
    records = [
        (ADDED, event(1)),
        (DEAD_LETTER, dead),
        (ADDED, event(3, lost_before=1)),
        (HEARTBEAT, heartbeat("SESSION_END", book(3, 2, bridge=1))),
    ]
    verdict = only(verify_records(records))
    assert verdict.delivered == 2
    assert verdict.ok


@pytest.mark.parametrize("kind", ["PERIODIC", "UNKNOWN"])
def test_non_final_kinds_do_not_close_the_books(kind: str) -> None:
    assert not judge([event(1)], heartbeat(kind, book(1, 1))).final
