"""Proving completeness from the topics alone.

Given the event records and the heartbeats read back from Kafka, check for every
(node, session, stream) that:

* no seq appears twice;
* the seqs missing from the topic (gaps, and any tail after the last record) number
  exactly as many as the SESSION_END ledger says were lost, plus the records it holds
  in doubt that are not in the topic;
* acked <= delivered <= acked + in_doubt: every acknowledged record is there, and
  every record beyond those is one the ledger held in doubt (timed out after it was
  sent, written by the broker all the same);
* acked + in_doubt + lost == fired.

The bridge is not trusted here: only what a consumer can read is used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.replay.audit import Audit, AuditReport
from bridge.replay.gaps import DEFAULT_TOLERANCE

StreamKey = tuple[str, str, str]  # (node_id, session_id, stream)


@dataclass
class StreamEvidence:
    """What the topics say about one stream of one session."""

    seqs: list[int] = field(default_factory=list)
    lost_before_sum: int = 0
    ledger: dict[str, Any] | None = None  # the stream's entry in the SESSION_END heartbeat
    final: bool = False


@dataclass(frozen=True)
class StreamVerdict:
    key: StreamKey
    delivered: int
    duplicates: int
    missing: int  # seqs in 1..fired not present in the topic
    fired: int | None
    acked: int | None
    lost: int | None
    lost_before_sum: int
    final: bool
    in_doubt: int = 0  # the ledger's: timed out after they were sent

    @property
    def found_in_doubt(self) -> int:
        """In-doubt records the topic holds after all (the broker wrote them)."""
        return max(0, self.delivered - (self.acked or 0))

    @property
    def unexplained(self) -> int | None:
        """Missing records the ledger does not account for (None without a ledger):
        its losses, and its in-doubt records that the topic does not hold."""
        if self.lost is None:
            return None
        return self.missing - self.lost - (self.in_doubt - self.found_in_doubt)

    @property
    def ok(self) -> bool:
        return (
            self.final
            and self.duplicates == 0
            and self.fired is not None
            and self.acked is not None
            and self.acked + self.in_doubt + (self.lost or 0) == self.fired
            and self.acked <= self.delivered <= self.acked + self.in_doubt
            and self.unexplained == 0
        )


class Evidence:
    """Accumulate decoded records (event records and heartbeats) and judge them."""

    def __init__(self) -> None:
        self.streams: dict[StreamKey, StreamEvidence] = defaultdict(StreamEvidence)

    def add_event(self, value: dict[str, Any]) -> None:
        envelope = value["envelope"]
        key = (envelope["node_id"], envelope["session_id"], envelope["stream"])
        evidence = self.streams[key]
        evidence.seqs.append(envelope["seq"])
        evidence.lost_before_sum += envelope["lost_before"]

    def add_heartbeat(self, value: dict[str, Any]) -> None:
        final = value["kind"] == "SESSION_END"
        for book in value["streams"]:
            key = (value["node_id"], value["session_id"], book["stream"])
            evidence = self.streams[key]
            if evidence.final and not final:
                continue  # a late periodic heartbeat must not replace the final ledger
            evidence.ledger = book
            evidence.final = final

    def add(self, schema_name: str, value: dict[str, Any]) -> None:
        if schema_name == "tracebridge.bridge.Heartbeat":
            self.add_heartbeat(value)
        elif schema_name != "tracebridge.bridge.DeadLetter":
            self.add_event(value)

    def verdicts(self) -> list[StreamVerdict]:
        out = []
        for key, evidence in sorted(self.streams.items()):
            unique = set(evidence.seqs)
            book = evidence.ledger
            fired = book["fired"] if book else None
            highest = fired if fired is not None else max(unique, default=0)
            missing = sum(1 for seq in range(1, highest + 1) if seq not in unique)
            out.append(
                StreamVerdict(
                    key=key,
                    delivered=len(unique),
                    duplicates=len(evidence.seqs) - len(unique),
                    missing=missing,
                    fired=fired,
                    acked=book["acked"] if book else None,
                    lost=sum(book["lost"].values()) if book else None,
                    lost_before_sum=evidence.lost_before_sum,
                    final=evidence.final,
                    in_doubt=int(book.get("in_doubt", 0)) if book else 0,
                )
            )
        return out


def verify_records(records: Iterable[tuple[str, dict[str, Any]]]) -> list[StreamVerdict]:
    """Convenience: (schema full name, decoded value) pairs in, verdicts out."""
    evidence = Evidence()
    for name, value in records:
        evidence.add(name, value)
    return evidence.verdicts()


def audit_records(
    records: Iterable[tuple[str, dict[str, Any]]],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    require_closed: bool = False,
) -> AuditReport:
    """The stricter check of ``tracebridge audit`` over (schema full name, value) pairs.

    Beyond :func:`verify_records` it checks where the losses were reported: every gap
    must be covered by a lost_before (of the record after it, or of a neighbour within
    ``tolerance`` records), by producer losses, or (after the last record) by the
    ledger; see :mod:`bridge.replay.audit` for the rules.
    """
    audit = Audit()
    for name, value in records:
        if name == "tracebridge.bridge.Heartbeat":
            audit.add_heartbeat(value)
        elif name != "tracebridge.bridge.DeadLetter" and "envelope" in value:
            audit.add_envelope(value["envelope"])
    return audit.judge(tolerance=tolerance, require_closed=require_closed)
