"""``tracebridge bench fleet``: run a fleet, then audit and replay it from the topics.

After :func:`~bridge.bench.fleet.run_fleet`, everything is read back the way a fleet's
operator would: ``audit`` in one process and with its partitions shared by worker
processes (both timed, the verdicts required equal), each node's books held against
the node's own count, and ``tracebridge replay --merge`` run as a command, its output
checked for completeness and event-time order.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bridge.bench.fleet import FleetRun, FleetSpec, run_fleet
from bridge.bench.fleet_check import (
    MergeCheck,
    NodeVerdict,
    check_books,
    check_merged,
    format_books,
)
from bridge.replay.audit import AuditReport, read_audit
from bridge.replay.audit_workers import read_audit_shared
from bridge.sinks.kafka.topics import all_topics


@dataclass
class FleetBenchResult:
    run: FleetRun
    report: AuditReport
    verdicts: list[NodeVerdict]
    records: int  # event records the audit read
    audit_s: float  # one process
    audit_workers: int
    audit_shared_s: float
    same_verdict: bool
    merged: MergeCheck
    merged_problems: list[str]
    replay_s: float

    @property
    def ok(self) -> bool:
        return (
            self.report.ok
            and self.same_verdict
            and all(v.ok for v in self.verdicts)
            and not self.merged_problems
        )


def replay_merged(bootstrap: str, prefix: str, out: Path) -> None:
    """``tracebridge replay --prefix PREFIX --merge -o OUT``, as a user runs it."""
    command = [sys.executable, "-m", "bridge", "--log-level", "warning", "replay"]
    command += ["-b", bootstrap, "--prefix", prefix, "--merge", "--no-gaps", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"replay --merge failed ({done.returncode}): {done.stderr[-2000:]}")


def judge_fleet(bootstrap: str, run: FleetRun, workers: int) -> FleetBenchResult:
    """Audit (1 process, then ``workers``), the books per node, the merged replay."""
    began = time.perf_counter()
    report = read_audit(bootstrap, run.prefix).judge(require_closed=True)
    audit_s = time.perf_counter() - began
    began = time.perf_counter()
    shared = read_audit_shared(bootstrap, run.prefix, workers=workers)
    shared_report = shared.judge(require_closed=True)
    shared_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory(prefix="tb-fleet-replay-") as tmp:
        out = Path(tmp) / "merged.jsonl"
        began = time.perf_counter()
        replay_merged(bootstrap, run.prefix, out)
        replay_s = time.perf_counter() - began
        with out.open() as lines:
            merged = check_merged(lines)
    return FleetBenchResult(
        run=run,
        report=report,
        verdicts=check_books(run.members, report),
        records=sum(s.gaps.records for s in report.streams),
        audit_s=audit_s,
        audit_workers=workers,
        audit_shared_s=shared_s,
        same_verdict=shared_report.as_dict() == report.as_dict(),
        merged=merged,
        merged_problems=merged.problems(report),
        replay_s=replay_s,
    )


def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=15).topics)
    doomed = [t for t in all_topics(prefix) if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


def run_fleet_bench(
    bootstrap: str,
    spec: FleetSpec,
    *,
    workers: int = 2,
    keep: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> FleetBenchResult:
    prefix = f"benchfleet{int(time.time())}"
    try:
        run = run_fleet(bootstrap, spec, prefix, say)
        say("every bridge closed its books; auditing and replaying the topics")
        return judge_fleet(bootstrap, run, workers)
    finally:
        if not keep:
            delete_topics(bootstrap, prefix)


def format_fleet(result: FleetBenchResult) -> str:
    run, merged = result.run, result.merged
    n = result.records
    lines = [
        format_books(result.verdicts),
        "",
        f"{len(run.members)} bridges attached in {run.attach_s:.1f} s; the nodes fired for "
        f"{run.fire_s:.1f} s; the last bridge closed its books {run.settle_s:.1f} s later",
        f"audit --require-closed: {'OK' if result.report.ok else 'FAILED'}; {n:,} records in "
        f"{result.audit_s:.2f} s in 1 process ({n / result.audit_s:,.0f}/s), "
        f"{result.audit_shared_s:.2f} s with {result.audit_workers} workers "
        f"({n / result.audit_shared_s:,.0f}/s); same verdict: "
        f"{'yes' if result.same_verdict else 'NO'}",
        f"replay --merge: {merged.events:,} events of {merged.nodes} nodes in "
        f"{result.replay_s:.2f} s, {merged.node_switches:,} switches between nodes, "
        f"{merged.out_of_order} out of event-time order; "
        f"{'complete' if not result.merged_problems else 'INCOMPLETE'}",
    ]
    for verdict in result.verdicts:
        lines.extend(f"FAIL {verdict.node_id}: {problem}" for problem in verdict.problems)
    lines.extend(f"FAIL replay --merge: {problem}" for problem in result.merged_problems[:20])
    return "\n".join(lines)
