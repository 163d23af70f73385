"""Judging a fleet run from its topics: each node's books against the node's own counts,
and one replay of every node merged in event-time order.

The audit (``tracebridge audit``) proves per (node, session, stream) that every seq was
delivered or counted lost, from the topics alone; here its numbers are also held
against what each emulated node counted itself, which no bridge code touched. The
merged replay (``tracebridge replay --merge``) must hold exactly the records the audit
counted as delivered, node by node and stream by stream, in event-time order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from bridge.bench.fleet import MemberRun
from bridge.bench.ping import table_head
from bridge.events.envelope import LOSS_STAGES
from bridge.replay.audit import AuditReport, StreamAudit


@dataclass
class NodeVerdict:
    """One node's books in the topics, next to what the node fired by its own count."""

    node_id: str
    source: str
    fired_by_node: int
    fired: int  # the SESSION_END ledgers'
    delivered: int  # distinct seqs in the topics
    lost: dict[str, int]
    sessions: int
    streams: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_books(members: Sequence[MemberRun], report: AuditReport) -> list[NodeVerdict]:
    """Per node: one closed session, every stream passing the audit, delivered + lost
    == fired, and the ledger's fired equal to the node's own count for every glob."""
    by_node: dict[str, list[StreamAudit]] = {}
    for stream in report.streams:
        by_node.setdefault(stream.key[0], []).append(stream)
    verdicts = [_node_verdict(member, by_node.pop(member.node_id, [])) for member in members]
    for node in sorted(by_node):
        stranger = NodeVerdict(node, "?", 0, 0, 0, dict.fromkeys(LOSS_STAGES, 0), 0, 0)
        stranger.problems.append("records from a node no bridge of this fleet is")
        verdicts.append(stranger)
    return verdicts


def _node_verdict(member: MemberRun, streams: list[StreamAudit]) -> NodeVerdict:
    lost = dict.fromkeys(LOSS_STAGES, 0)
    fired = delivered = 0
    for stream in streams:
        ledger = stream.gaps.ledger
        fired += ledger.fired if ledger else 0
        delivered += stream.gaps.delivered
        for stage in LOSS_STAGES:
            lost[stage] += stream.lost.get(stage, 0)
    verdict = NodeVerdict(
        member.node_id, member.source, sum(member.fired_by_node.values()), fired, delivered,
        lost, len({s.key[1] for s in streams}), len(streams),
    )  # fmt: skip
    problems = verdict.problems
    if verdict.sessions != 1:
        problems.append(f"{verdict.sessions} sessions, not 1")
    for stream in streams:
        name = stream.key[2]
        ledger = stream.gaps.ledger
        if stream.status != "ok":
            problems.append(f"{name}: audit {stream.status} ({'; '.join(stream.problems)})")
        elif ledger and stream.gaps.delivered + sum(stream.lost.values()) != ledger.fired:
            problems.append(f"{name}: delivered + lost != fired={ledger.fired}")
        if not any(fnmatchcase(name, glob) for glob in member.fired_by_node) and (
            ledger is None or ledger.fired
        ):
            problems.append(f"{name}: fired, yet the node counts no such events")
    for glob, count in sorted(member.fired_by_node.items()):
        books = sum(
            s.gaps.ledger.fired for s in streams if s.gaps.ledger and fnmatchcase(s.key[2], glob)
        )
        if books != count:
            problems.append(f"{glob}: the node fired {count}, the ledgers say {books}")
    return verdict


@dataclass
class MergeCheck:
    """What a merged replay of the fleet held."""

    events: int
    nodes: int
    out_of_order: int  # events earlier than the one before them
    node_switches: int  # consecutive events from different nodes: how interleaved
    counts: Counter[tuple[str, str]]  # (node, stream) -> events

    def problems(self, report: AuditReport) -> list[str]:
        """Complete (every delivered record, once) and in event-time order."""
        delivered: Counter[tuple[str, str]] = Counter()
        for stream in report.streams:
            delivered[(stream.key[0], stream.key[2])] += stream.gaps.delivered
        delivered = +delivered  # streams that fired nothing are not events
        out = []
        if self.out_of_order:
            out.append(f"{self.out_of_order} event(s) out of event-time order")
        for key in sorted(set(delivered) | set(self.counts)):
            if delivered[key] != self.counts[key]:
                out.append(
                    f"{key[0]} {key[1]}: {self.counts[key]} replayed, {delivered[key]} audited"
                )
        return out


def merged_order_key(envelope: dict[str, Any]) -> tuple[int, str, str, str, int]:
    """The order ``replay --merge`` promises (bridge.replay.merge.time_key)."""
    return (
        envelope["ts_wall_ns"],
        envelope["node_id"],
        envelope["session_id"],
        envelope["stream"],
        envelope["seq"],
    )


def check_merged(lines: Iterable[str]) -> MergeCheck:
    """Read ``replay --merge`` JSON lines and say how ordered and complete they are."""
    counts: Counter[tuple[str, str]] = Counter()
    previous: tuple[int, str, str, str, int] | None = None
    out_of_order = switches = events = 0
    for line in lines:
        envelope = json.loads(line)["envelope"]
        key = merged_order_key(envelope)
        if previous is not None:
            out_of_order += key < previous
            switches += key[1] != previous[1]
        previous = key
        counts[(envelope["node_id"], envelope["stream"])] += 1
        events += 1
    nodes = len({node for node, _ in counts})
    return MergeCheck(events, nodes, out_of_order, switches, counts)


def format_books(verdicts: Sequence[NodeVerdict]) -> str:
    """The per-node table the README quotes."""
    lines = table_head(
        ("node", "source", "fired (node's count)", "fired (ledger)", "delivered",
         "lost kernel/bridge/producer/node", "streams", "audit"),
    )  # fmt: skip
    for v in verdicts:
        lost = "/".join(f"{v.lost[stage]:,}" for stage in LOSS_STAGES)
        lines.append(
            f"| {v.node_id} | {v.source} | {v.fired_by_node:,} | {v.fired:,} | "
            f"{v.delivered:,} | {lost} | {v.streams} | {'ok' if v.ok else 'FAIL'} |"
        )
    return "\n".join(lines)
