"""The audit's verdicts (bridge/replay/audit.py) on hand-made evidence, and verify's
audit_records wrapper."""

from __future__ import annotations

from typing import Any

from bridge.replay.audit import Audit, AuditReport
from bridge.replay.report import format_audit
from bridge.verify import audit_records

NODE, SESSION, STREAM = "node-a", "s1", "mempool:added"
ZERO = {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}


def envelope(seq: int, lost_before: int = 0, stream: str = STREAM) -> dict[str, Any]:
    return {
        "node_id": NODE,
        "session_id": SESSION,
        "stream": stream,
        "seq": seq,
        "lost_before": lost_before,
        "lost": dict(ZERO),
    }


def beat(kind: str, seq: int = 1, stream: str = STREAM, **book: Any) -> dict[str, Any]:
    lost = {**ZERO, **book.pop("lost", {})}
    entry: dict[str, Any] = {"stream": stream, "fired": 0, "acked": 0, **book, "lost": lost}
    return {
        "node_id": NODE,
        "session_id": SESSION,
        "kind": kind,
        "heartbeat_seq": seq,
        "streams": [entry],
    }


def judge(seqs: list[Any], *beats: dict[str, Any], **options: Any) -> AuditReport:
    audit = Audit()
    for item in seqs:
        seq, lost_before = item if isinstance(item, tuple) else (item, 0)
        audit.add_envelope(envelope(seq, lost_before))
    for value in beats:
        audit.add_heartbeat(value)
    return audit.judge(**options)


def test_closed_and_balanced_passes() -> None:
    report = judge([1, 2, (5, 2)], beat("SESSION_END", fired=5, acked=3, lost={"kernel": 2}))
    (stream,) = report.streams
    assert (report.ok, stream.status, stream.problems, stream.warnings) == (True, "ok", [], [])


def test_final_ledger_wins_over_a_later_periodic_one() -> None:
    report = judge(
        [1, 2, 3],
        beat("SESSION_END", seq=5, fired=3, acked=3),
        beat("PERIODIC", seq=6, fired=1, acked=1),
    )
    assert report.streams[0].status == "ok"


def test_records_beyond_fired_fail() -> None:
    report = judge([1, 2, 3, 4], beat("SESSION_END", fired=3, acked=3))
    assert any("above fired=3" in p for p in report.streams[0].problems)


def test_lost_before_claiming_more_than_the_ledger_fails() -> None:
    report = judge([1, (4, 2)], beat("SESSION_END", fired=4, acked=2, lost={"producer": 2}))
    (stream,) = report.streams
    assert any("lost_before reports 2 losses" in p for p in stream.problems)


def test_records_in_doubt_are_settled_by_what_the_topic_holds() -> None:
    """Seq 3 and 4 timed out after they were sent: seq 3 was written, 4 was not. The
    gap at 4 is covered, the report says one of two was written, and the table counts
    the other as lost at the producer."""
    report = judge([1, 2, 3, 5], beat("SESSION_END", fired=5, acked=3, in_doubt=2))
    (stream,) = report.streams
    assert (stream.status, stream.problems, stream.warnings) == ("ok", [], [])
    assert stream.in_doubt_written == 1
    assert stream.as_dict()["in_doubt"] == 2
    assert [gap.covered_by for gap in stream.gaps.gaps] == ["producer"]
    text = format_audit(report)
    assert "2 record(s) timed out after they were sent (in doubt): 1 are in the topic" in text
    row = next(line for line in text.splitlines() if line.startswith(NODE))
    assert row.split()[2:9] == ["1", "5", "4", "0", "0", "1", "0"]


def test_in_doubt_excuses_no_more_than_it_states() -> None:
    """Two in doubt cannot cover three missing seqs; nor can records in the topic
    exceed acked + in doubt; nor can in doubt stand in for an acknowledged record."""
    short = judge([1, 5], beat("SESSION_END", fired=5, acked=1, in_doubt=2))
    assert any("not accounted for" in p for p in short.streams[0].problems)
    surplus = judge(
        [1, 2, 3], beat("SESSION_END", fired=3, acked=1, in_doubt=1, lost={"kernel": 1})
    )
    assert any("counted lost are in the topic" in p for p in surplus.streams[0].problems)
    hidden = judge([1, 2, 3], beat("SESSION_END", fired=5, acked=5, in_doubt=2))
    assert any(
        "2 acknowledged record(s) are not in the topic" in p for p in hidden.streams[0].problems
    )


def test_producer_timeouts_written_after_all_are_a_warning() -> None:
    """A ledger written before in-doubt existed counted a record that timed out after
    it was sent as lost; finding it in the topic is a warning, not a failure."""
    report = judge([1, 2, 3], beat("SESSION_END", fired=3, acked=2, lost={"producer": 1}))
    (stream,) = report.streams
    assert stream.status == "ok"
    assert any("producer timeouts" in w for w in stream.warnings)
    worse = judge([1, 2, 3], beat("SESSION_END", fired=3, acked=1, lost={"kernel": 2}))
    assert worse.streams[0].status == "FAIL"


def test_open_streams_warn_and_duplicates_always_fail() -> None:
    report = judge([1, 3], beat("PERIODIC", fired=3, acked=2))
    (stream,) = report.streams
    assert (stream.status, report.ok) == ("open", True)
    assert stream.warnings
    assert not judge([1, 3], beat("PERIODIC", fired=3), require_closed=True).ok
    assert judge([1, 1, 2]).streams[0].status == "FAIL"


def test_a_ledger_with_no_records_is_judged_too() -> None:
    report = judge([], beat("SESSION_END", fired=4, acked=4))
    (stream,) = report.streams
    assert stream.gaps.unexplained == 4
    assert not report.ok


def test_verify_audit_records_applies_the_same_rules() -> None:
    records = [("tracebridge.mempool.Added", {"envelope": envelope(s)}) for s in (1, 2, 4)]
    records.append(("tracebridge.bridge.Heartbeat", beat("SESSION_END", fired=4, acked=3)))
    report = audit_records(records)
    assert not report.ok
    assert report.streams[0].gaps.unexplained == 1


def test_a_blind_start_is_stated_apart_from_losses() -> None:
    """A session that went live 137 ms after its node started could not see what fired
    before: not a loss (no seq was given out), so the verdict stays OK, but the report
    says it, from the ledger alone."""
    from bridge.replay.report import format_audit

    ending = beat("SESSION_END", fired=2, acked=2)
    ending["attach_delay_ns"] = 137_000_000
    report = judge([1, 2], ending)
    assert report.ok
    assert report.attach_delays == {(NODE, SESSION): 137_000_000}
    assert report.as_dict()["attach_delays_ns"] == [
        {"node": NODE, "session": SESSION, "attach_delay_ns": 137_000_000}
    ]
    text = format_audit(report)
    assert f"note {NODE} session {SESSION}: probes live 137 ms after the node started" in text
    assert judge([1, 2], beat("SESSION_END", fired=2, acked=2)).attach_delays == {}
