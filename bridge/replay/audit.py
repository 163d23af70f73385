"""``tracebridge audit``: prove from the topics alone that nothing was lost silently.

It reads every event topic of a prefix (envelopes only) and the ``<prefix>.bridge``
ledger, and judges each (node, session, stream):

* **closed** (a SESSION_END heartbeat lists the stream) -- it passes when all hold:

  1. no seq appears twice (duplicates);
  2. no record has a seq above the ledger's ``fired``;
  3. every missing seq in 1..fired is accounted for, by the rules of
     :mod:`bridge.replay.gaps`: the ``lost_before`` of the record after the gap, or of a
     record at most ``tolerance`` records away (kernel losses of concurrently firing
     CPUs land on a neighbour), or the ledger's producer losses (never in a
     lost_before), or -- after the last record, or in a gap holding a producer loss
     (whose record may have carried the report) -- the ledger's losses that no
     lost_before reported. Coverage is cumulative, so delivered + lost == fired
     follows: a stream passes only if the ledger accounts for every missing seq;
  4. the lost_before counts add up to no more than the ledger's kernel + bridge + node
     losses, and the ledger claims no more losses than there are missing seqs.

  Records the ledger holds *in doubt* (timed out after they were sent; the broker may
  have written them) are settled here: those in the topic are delivered, the rest are
  gaps covered like producer losses, and the report states how many were written. A
  ledger written before in-doubt existed counted such records as producer losses;
  finding them in the topic is a warning, as long as there are no more of them than
  its producer losses.

* **open** (no SESSION_END yet: the bridge still runs, or stopped without closing its
  books) -- judged the same way against its latest periodic heartbeat (if any), but its
  missing seqs are warnings, not failures, unless ``require_closed`` (then being open
  is a failure). Duplicates fail an open stream too: they never depend on the books.

``lost_before`` counts no gap uses within the tolerance are reported as a warning
(``overreported``). Records that decode with no committed schema are counted and
shown; if they were events, their seqs show up as gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.codec.fast_decode import FastDecoder
from bridge.codec.single_object import SchemaStore, SingleObjectError, committed_schemas
from bridge.events.envelope import LOSS_STAGES
from bridge.replay.events import HEARTBEAT, StreamKey
from bridge.replay.gaps import DEFAULT_TOLERANCE, Ledger, StreamGaps, StreamTrace, find_gaps
from bridge.replay.kafka_range import RangeReader
from bridge.replay.selection import event_topics, ledger_topic

MAX_LISTED = 5  # gaps or seqs named in one problem line


@dataclass
class StreamAudit:
    """The verdict on one (node, session, stream)."""

    gaps: StreamGaps
    closed: bool
    lost: dict[str, int]  # by stage: the ledger's, else the latest envelope's totals
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> StreamKey:
        return self.gaps.key

    @property
    def in_doubt_written(self) -> int:
        """Of the ledger's records in doubt, how many the topic holds: the records
        beyond what it acked (lost records cannot be there, by rule 4)."""
        ledger = self.gaps.ledger
        if ledger is None or not ledger.in_doubt:
            return 0
        written = self.gaps.delivered - self.gaps.beyond_ledger - ledger.acked
        return min(max(written, 0), ledger.in_doubt)

    @property
    def status(self) -> str:
        if self.problems:
            return "FAIL"
        return "ok" if self.closed else "open"

    def as_dict(self) -> dict[str, Any]:
        gaps = self.gaps
        ledger = gaps.ledger
        return {
            "node_id": self.key[0],
            "session_id": self.key[1],
            "stream": self.key[2],
            "status": self.status,
            "closed": self.closed,
            "fired": ledger.fired if ledger else None,
            "acked": ledger.acked if ledger else None,
            "in_doubt": ledger.in_doubt if ledger else 0,
            "in_doubt_written": self.in_doubt_written,
            "records": gaps.records,
            "delivered": gaps.delivered,
            "duplicates": gaps.duplicates,
            "lost": self.lost,
            "lost_before_total": gaps.lost_before_total,
            "missing": gaps.missing,
            "unexplained": gaps.unexplained,
            "overreported": gaps.overreported,
            "gaps": [g.as_dict() for g in gaps.gaps[:100]],
            "problems": self.problems,
            "warnings": self.warnings,
        }


def _gap_list(gaps: StreamGaps) -> str:
    bad = [g for g in gaps.gaps if g.unexplained]
    text = ", ".join(
        f"{g.first}" if g.size == 1 else f"{g.first}..{g.last}" for g in bad[:MAX_LISTED]
    )
    return text + (f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")


def judge(gaps: StreamGaps, last_lost: dict[str, int] | None, require_closed: bool) -> StreamAudit:
    """Apply the module's rules to one stream's gaps."""
    ledger = gaps.ledger
    closed = ledger is not None and ledger.final
    lost = dict(ledger.lost) if ledger else dict(last_lost or dict.fromkeys(LOSS_STAGES, 0))
    audit = StreamAudit(gaps, closed, lost)
    problems, warnings = audit.problems, audit.warnings
    if gaps.duplicates:
        seqs = ", ".join(str(s) for s in gaps.duplicate_seqs[:MAX_LISTED])
        problems.append(f"{gaps.duplicates} duplicate record(s) (seq {seqs})")
    missing_note = (
        f"{gaps.unexplained} missing seq(s) not accounted for by lost_before or the ledger "
        f"(seq {_gap_list(gaps)})"
    )
    if gaps.overreported:
        warnings.append(f"lost_before reports {gaps.overreported} loss(es) with no gap to match")
    if not closed:
        if gaps.unexplained:
            warnings.append(f"open: {missing_note}; the ledger may not have caught up")
        if require_closed:
            problems.append("open: no SESSION_END ledger for this stream")
        return audit
    assert ledger is not None
    if gaps.unexplained:
        problems.append(missing_note)
    if gaps.beyond_ledger:
        problems.append(f"{gaps.beyond_ledger} record(s) with a seq above fired={ledger.fired}")
    non_producer = sum(v for k, v in ledger.lost.items() if k != "producer")
    if gaps.lost_before_total > non_producer:
        problems.append(
            f"lost_before reports {gaps.lost_before_total} losses; the ledger has "
            f"{non_producer} kernel+bridge+node"
        )
    held = gaps.delivered - gaps.beyond_ledger
    if held < ledger.acked:  # in doubt must not cover for an acknowledged record
        problems.append(
            f"{ledger.acked - held} acknowledged record(s) are not in the topic "
            f"(acked={ledger.acked}, {held} present)"
        )
    # What the topic holds beyond acked + in doubt: records the ledger counted lost.
    excess = held + ledger.lost_total - ledger.fired
    if excess > 0:
        producer = ledger.lost.get("producer", 0)
        text = f"{excess} record(s) counted lost are in the topic"
        if excess <= producer:
            warnings.append(f"{text}: producer timeouts Kafka wrote after all")
        else:
            problems.append(f"{text}: more than the {producer} producer losses")
    return audit


class Audit:
    """Evidence from the topics: per stream, its records' seqs and lost_before
    (:class:`StreamTrace`), and the latest ledger entry (SESSION_END over periodic, then
    the highest heartbeat_seq).

    These are books that merge: readers that each read a share of the partitions build
    one Audit each, and :meth:`merge` adds them up to exactly the Audit one reader of
    every partition would have built, whatever the shares and their order. Every choice
    between two facts (the ledger entry kept, a session's attach delay, the examples of
    undecodable records) is made by value, never by arrival, so the verdict cannot
    depend on which reader saw what first. That is what ``tracebridge audit --workers``
    relies on: a stream's records sit in one partition, but its ledger sits in another
    topic, read by whichever worker got that partition.
    """

    def __init__(self, nodes: Sequence[str] | None = None) -> None:
        self.nodes = frozenset(nodes) if nodes else None
        self.traces: dict[StreamKey, StreamTrace] = {}
        self._ledgers: dict[StreamKey, tuple[tuple[Any, ...], Ledger]] = {}
        self.heartbeats = 0
        # (node, session) -> (rank of the heartbeat, ns from the node's start to live probes)
        self._attach: dict[tuple[str, str], tuple[tuple[bool, int], int]] = {}
        self._undecodable: list[tuple[str, int, int, str]] = []  # the first by location
        self.undecodable_count = 0

    @property
    def attach_delays(self) -> dict[tuple[str, str], int]:
        """(node, session) -> how long after the node's start its probes were live."""
        return {key: delay for key, (_, delay) in self._attach.items()}

    @property
    def undecodable(self) -> list[str]:
        """Up to MAX_LISTED undecodable records, the first by topic, partition, offset."""
        return [f"{t}[{p}]@{o}: {error}" for t, p, o, error in self._undecodable]

    def add_envelope(self, envelope: dict[str, Any]) -> None:
        node = envelope["node_id"]
        if self.nodes is not None and node not in self.nodes:
            return
        key = (node, envelope["session_id"], envelope["stream"])
        trace = self.traces.get(key)
        if trace is None:
            trace = self.traces[key] = StreamTrace()
        trace.add(envelope["seq"], envelope["lost_before"], envelope.get("lost"))

    def add_heartbeat(self, value: dict[str, Any]) -> None:
        if self.nodes is not None and value["node_id"] not in self.nodes:
            return
        self.heartbeats += 1
        final = value["kind"] == "SESSION_END"
        rank = (final, int(value["heartbeat_seq"]))
        session = (value["node_id"], value["session_id"])
        delay = value.get("attach_delay_ns")
        if delay is not None:
            self._keep_attach(session, (rank, int(delay)))
        for book in value["streams"]:
            ledger = Ledger.from_book(book, final)
            self._keep_ledger((*session, book["stream"]), (_ledger_rank(rank, ledger), ledger))

    def _keep_ledger(self, key: StreamKey, entry: tuple[tuple[Any, ...], Ledger]) -> None:
        held = self._ledgers.get(key)
        if held is None or entry[0] > held[0]:
            self._ledgers[key] = entry

    def _keep_attach(self, session: tuple[str, str], entry: tuple[tuple[bool, int], int]) -> None:
        held = self._attach.get(session)
        if held is None or entry > held:
            self._attach[session] = entry

    def add_undecodable(self, topic: str, partition: int, offset: int, error: str) -> None:
        self.undecodable_count += 1
        self._undecodable.append((topic, partition, offset, error))
        if len(self._undecodable) > MAX_LISTED:
            self._undecodable = sorted(self._undecodable)[:MAX_LISTED]

    def merge(self, other: Audit) -> None:
        """Add the books of ``other``, read from other partitions (see the class doc)."""
        if other.nodes != self.nodes:
            raise ValueError("cannot merge audits of different node selections")
        for key, trace in other.traces.items():
            held = self.traces.get(key)
            if held is None:
                self.traces[key] = trace
            else:
                held.merge(trace)
        for key, entry in other._ledgers.items():
            self._keep_ledger(key, entry)
        for session, attach in other._attach.items():
            self._keep_attach(session, attach)
        self.heartbeats += other.heartbeats
        self.undecodable_count += other.undecodable_count
        self._undecodable = sorted([*self._undecodable, *other._undecodable])[:MAX_LISTED]

    def judge(
        self,
        *,
        tolerance: int = DEFAULT_TOLERANCE,
        require_closed: bool = False,
        leading: bool = True,
        trailing: bool = True,
        only_recorded: bool = False,
    ) -> AuditReport:
        """Verdicts for every stream seen. A partial read (a replay's range) says what it
        covers: ``leading`` (from each session's start: seqs before the first record are
        a gap), ``trailing`` (to the end: seqs after the last one, up to the final
        ledger's fired, are a gap), ``only_recorded`` (judge only streams with records)."""
        keys = set(self.traces) if only_recorded else set(self.traces) | set(self._ledgers)
        streams = []
        for key in sorted(keys):
            trace = self.traces.get(key) or StreamTrace()
            held = self._ledgers.get(key)
            ledger = held[1] if held else None
            gaps = find_gaps(
                key,
                trace,
                ledger,
                leading=leading,
                trailing=trailing and ledger is not None and ledger.final,
                tolerance=tolerance,
            )
            streams.append(judge(gaps, trace.last_lost, require_closed))
        return AuditReport(
            streams,
            self.heartbeats,
            self.undecodable_count,
            sorted(self.undecodable),
            dict(self.attach_delays),
        )


def _ledger_rank(rank: tuple[bool, int], ledger: Ledger) -> tuple[Any, ...]:
    """SESSION_END first, then the highest heartbeat_seq; two entries with the same
    (a heartbeat written twice) by their numbers, so the one kept is the same for
    every reading order."""
    return (*rank, ledger.fired, ledger.acked, ledger.in_doubt, sorted(ledger.lost.items()))


@dataclass
class AuditReport:
    streams: list[StreamAudit]
    heartbeats: int
    undecodable: int
    undecodable_examples: list[str]
    # (node, session) -> how long after the node's start its probes were live: what
    # fired before is in no count (a blind start, not a loss), so it is stated apart.
    attach_delays: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(not s.problems for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "heartbeats": self.heartbeats,
            "undecodable": self.undecodable,
            "undecodable_examples": self.undecodable_examples,
            "attach_delays_ns": [
                {"node": node, "session": session, "attach_delay_ns": delay}
                for (node, session), delay in sorted(self.attach_delays.items())
            ],
            "streams": [s.as_dict() for s in self.streams],
        }


def audit_topics(prefix: str, store: SchemaStore) -> list[str]:
    """What an audit of ``prefix`` reads: every event topic, and the ledger."""
    return [*event_topics(prefix, store), ledger_topic(prefix)]


def read_audit(
    bootstrap_servers: str,
    prefix: str,
    *,
    nodes: Sequence[str] | None = None,
    store: SchemaStore | None = None,
    consumer_config: dict[str, Any] | None = None,
) -> Audit:
    """Read every event topic of ``prefix`` (envelopes only) and its ledger, in this
    process (:mod:`bridge.replay.audit_workers` shares the partitions among several)."""
    store = store or committed_schemas()
    topics = audit_topics(prefix, store)
    with RangeReader(bootstrap_servers, topics, config=consumer_config) as reader:
        return read_books(reader, Audit(nodes), store)


def read_books(reader: RangeReader, audit: Audit, store: SchemaStore) -> Audit:
    """Add everything ``reader`` reads to ``audit``'s books (envelopes and heartbeats)."""
    decoder = FastDecoder(store)
    decode = decoder.decode
    node_set = audit.nodes
    traces = audit.traces
    for batch in reader.batches():
        for message in batch:
            value = message.value() or b""
            try:
                known, record = decode(value, 1)  # the envelope is all it needs
            except SingleObjectError as error:
                audit.add_undecodable(
                    message.topic() or "", message.partition() or 0, message.offset() or 0,
                    str(error),
                )  # fmt: skip
                continue
            envelope = record.get("envelope")
            if envelope is None:
                if known.full_name == HEARTBEAT:
                    audit.add_heartbeat(decode(value)[1])
                continue
            # Audit.add_envelope, inlined: this loop runs once per record
            node = envelope["node_id"]
            if node_set is not None and node not in node_set:
                continue
            key = (node, envelope["session_id"], envelope["stream"])
            trace = traces.get(key)
            if trace is None:
                trace = traces[key] = StreamTrace()
            seq = envelope["seq"]
            if seq == trace.next_seq:
                trace.next_seq = seq + 1
            else:
                trace.jump(seq)
            lost_before = envelope["lost_before"]
            if lost_before:
                trace.reports.append((seq, lost_before))
            if seq > trace.max_seq:
                trace.max_seq = seq
                trace.last_lost = envelope["lost"]
            elif seq == trace.max_seq:
                trace.tie(envelope["lost"])
    return audit
