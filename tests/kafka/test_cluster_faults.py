"""A replicated cluster under faults, with the bridge writing 100k events/s into it.

One 3-node cluster (``tracebridge kafka start --brokers 3``) serves the module. Each test
floods the emulated node (ping mode, real BPF), lets the bridge trace it into topics of
its own (3 replicas, 2 in sync: the defaults on 3 brokers), strikes the cluster while
the load runs, waits for it to recover, closes the books and audits the topics: for
every stream delivered + lost == fired, no duplicate, and losses only at the stages the
fault may cause, every one counted.

The waits are on conditions (a new leader, acknowledgements resuming, replicas back in
sync), not sleeps, except where a fault's length is the point: a pause must outlast the
producer's request timeout, and the whole cluster stays down for OUTAGE_S.

What each fault did (stall, queue, losses) is printed; run with ``-s`` to see it. The
README's "Replicated cluster under faults" reports these numbers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin._config import ConfigResource  # admin does not re-export it for mypy

from bridge.localkafka.cluster import LocalCluster
from bridge.replay.audit import StreamAudit
from tests.support.cluster_load import EVENTS_PER_S, Flood, FloodResult, audit_exact, flood
from tests.support.cluster_load import wait_until as wait

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.bpf,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs java (Kafka 4 needs 17+)"),
]

TRACEBRIDGE = Path(sys.executable).with_name("tracebridge")
# The net ring at 256 MiB (the default is 16): about 14 s of this load. After a stall
# the producer catches up at 200-600k records/s on the two cores it shares with three
# brokers and the node; a busy CI box can starve the bridge meanwhile (64 MiB, 3.5 s,
# lost a few thousand events in the kernel while other jobs held both cores), and the
# ring is what must absorb that, or a Kafka fault would end up as kernel losses.
USDT = {"ring_buffer_kib": {"net": 256 * 1024}}
# The producer queue at 2M records (the default is 1M, 10 s of this load): a frozen
# leader that was also the active controller stalls writes for up to ~12 s here (a new
# controller is elected, then fences it; meanwhile each socket timeout is followed by
# a reconnect to the frozen node that times out again).
ONE_NODE_FAULT = {"queue_max_messages": 2_000_000}
# librdkafka gives up on a produce request after socket.timeout.ms (60 s by default;
# request.timeout.ms is only the broker's own ack timeout, sent in the request). The
# pause test lowers it to 3 s and pauses for five times as long.
SOCKET_TIMEOUT_MS = 3000
PAUSE_S = 5 * SOCKET_TIMEOUT_MS / 1000
# How long the whole cluster stays down. The issue asks for a minute; the default here
# is 20 s, which already fills the producer queue (1M records: 10 s of this load) and
# reaches librdkafka's longest reconnect backoff (10 s), so a minute adds only more of
# the same shedding. TRACEBRIDGE_TEST_OUTAGE_S=60 runs the minute.
OUTAGE_S = float(os.environ.get("TRACEBRIDGE_TEST_OUTAGE_S", "20"))
QUEUE_MAX_MESSAGES = 1_000_000  # kafka.queue_max_messages' default
# A (re)started node: JVM start, log recovery and catching up, on two busy cores.
RECOVER_S = 180.0


def tracebridge(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, as a developer runs it: the nodes it starts
    outlive it, and are found again through the run directory."""
    return subprocess.run(
        [str(TRACEBRIDGE), *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three nodes, started, inspected and stopped through the CLI."""
    run_dir = tmp_path_factory.mktemp("cluster")
    where = ("--run-dir", str(run_dir))
    started = tracebridge("kafka", "start", "--brokers", "3", "--port", "0", *where)
    running = LocalCluster.from_run_dir(run_dir)
    assert running is not None, started.stderr
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == running.bootstrap_servers
        status = tracebridge("kafka", "status", *where)
        assert status.returncode == 0, status.stdout
        assert status.stdout.count(" running pid=") == 3
        yield running
    finally:
        for node in running.nodes:
            if node.status().running:
                node.resume()  # a failed pause test must not leave a frozen JVM behind
        stopped = tracebridge("kafka", "stop", *where)
        running.stop()
    assert stopped.returncode == 0, stopped.stderr
    assert tracebridge("kafka", "status", *where).returncode == 1


def all_in_sync(load: Flood, cluster: LocalCluster, struck: int | None = None) -> bool:
    """Every node in sync again; with ``struck``, also led by another node: a node just
    back answers from the metadata it had before the fault (itself the leader, all in
    sync) until it catches up, and must not be believed."""
    in_sync = load.view.in_sync(load.topic) == {node.node_id for node in cluster.nodes}
    return in_sync and (struck is None or load.view.leader(load.topic) not in (struck, -1))


def observed(case: str, streams: dict[str, StreamAudit], **facts: object) -> None:
    """Print what the fault did, for the README (pytest -s shows it)."""
    print(f"\n({case}) " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    for name, stream in streams.items():
        ledger = stream.gaps.ledger
        assert ledger is not None
        lost = {k: v for k, v in ledger.lost.items() if v}
        print(
            f"({case}) {name}: fired {ledger.fired}, delivered {stream.gaps.delivered}, "
            f"lost {lost or 0}, duplicates {stream.gaps.duplicates}"
        )


def test_leader_killed_and_restarted(
    cluster: LocalCluster, topic_prefix: str, tmp_path: Path
) -> None:
    """(a) SIGKILL the loaded partition's leader: writes go on with the two left (3
    replicas, 2 in sync, by default on 3 brokers); it restarts and rejoins. No loss."""
    result: list[FloodResult] = []
    bootstrap = cluster.bootstrap_servers
    kafka = ONE_NODE_FAULT
    with flood(bootstrap, topic_prefix, tmp_path, result, kafka=kafka, usdt=USDT) as load:
        assert len(load.view.partition(load.topic).replicas) == 3
        (config,) = load.view.admin.describe_configs([ConfigResource("topic", load.topic)]).values()
        assert config.result(timeout=30)["min.insync.replicas"].value == "2"

        leader = load.view.leader(load.topic)
        struck = time.monotonic()
        cluster.node(leader).kill()
        elected = wait(lambda: load.view.leader(load.topic) not in (leader, -1), 60, "a leader")
        assert leader not in load.view.in_sync(load.topic)
        load.watch.wait_acks(EVENTS_PER_S, 60, "a second of load acked with a node dead")
        resumed = time.monotonic() - struck
        assert cluster.node(leader).status().running is False
        restarted = time.monotonic()
        cluster.node(leader).start(timeout=RECOVER_S)
        back = wait(lambda: all_in_sync(load, cluster, leader), RECOVER_S, "all in sync again")
        facts = {
            "new leader seen after": f"{elected:.1f} s",
            "acks resumed by": f"{resumed:.1f} s",
            "longest stall": f"{load.watch.longest_stall(struck):.1f} s",
            "peak queue": load.watch.peak_queue(struck),
            "restart to in sync": f"{time.monotonic() - restarted:.1f} s ({back:.1f} s wait)",
        }
    observed("a", audit_exact(bootstrap, topic_prefix, result[0]), **facts)


def test_leader_paused_past_the_request_timeout(
    cluster: LocalCluster, topic_prefix: str, tmp_path: Path
) -> None:
    """(b) SIGSTOP the leader for 5x the producer's request timeout: the controller
    fences it, the producer gives up on the frozen broker and writes go on with the new
    leader while it is still frozen; after SIGCONT it rejoins. No loss, no duplicate
    (the timed-out requests are retried with their idempotent sequence numbers)."""
    result: list[FloodResult] = []
    kafka = {**ONE_NODE_FAULT, "librdkafka": {"socket.timeout.ms": str(SOCKET_TIMEOUT_MS)}}
    bootstrap = cluster.bootstrap_servers
    with flood(bootstrap, topic_prefix, tmp_path, result, kafka=kafka, usdt=USDT) as load:
        leader = load.view.leader(load.topic)
        struck = time.monotonic()
        cluster.node(leader).pause()
        try:
            load.watch.wait_acks(EVENTS_PER_S, 60, "a second of load acked past the frozen leader")
            resumed = time.monotonic() - struck
            assert resumed < PAUSE_S, "acks came back only when the leader did"
            # Fenced: led by another node, out of the ISR (asked again if the question
            # went to the frozen node, which never answers it).
            wait(lambda: load.view.fenced(load.topic, leader), 30, "the frozen leader fenced")
            wait(lambda: time.monotonic() - struck >= PAUSE_S, PAUSE_S, "the pause to end")
        finally:
            cluster.node(leader).resume()
        back = wait(lambda: all_in_sync(load, cluster, leader), RECOVER_S, "all in sync again")
        facts = {
            "paused": f"{PAUSE_S:.0f} s",
            "acks resumed by": f"{resumed:.1f} s",
            "longest stall": f"{load.watch.longest_stall(struck):.1f} s",
            "peak queue": load.watch.peak_queue(struck),
            "in sync again": f"{back:.1f} s after SIGCONT",
        }
    observed("b", audit_exact(bootstrap, topic_prefix, result[0]), **facts)


def test_rolling_restart_of_all_three(
    cluster: LocalCluster, topic_prefix: str, tmp_path: Path
) -> None:
    """(c) Stop (SIGTERM: controlled shutdown) and start each node in turn, the next
    only once every replica is back in sync. Leadership moves before each stop, so the
    writes barely pause. No loss."""
    result: list[FloodResult] = []
    bootstrap = cluster.bootstrap_servers
    kafka = ONE_NODE_FAULT
    with flood(bootstrap, topic_prefix, tmp_path, result, kafka=kafka, usdt=USDT) as load:
        struck = time.monotonic()
        for node in cluster.nodes:
            node.stop()
            node.start(timeout=RECOVER_S)
            wait(
                lambda: all_in_sync(load, cluster), RECOVER_S, f"in sync after node {node.node_id}"
            )
        facts = {
            "restarts took": f"{time.monotonic() - struck:.1f} s",
            "longest stall": f"{load.watch.longest_stall(struck):.1f} s",
            "peak queue": load.watch.peak_queue(struck),
        }
    observed("c", audit_exact(bootstrap, topic_prefix, result[0]), **facts)


def test_whole_cluster_down_and_back(
    cluster: LocalCluster, topic_prefix: str, tmp_path: Path
) -> None:
    """(d) SIGKILL all three, keep them down for OUTAGE_S, start them again. The
    producer queues what it can (1M records, librdkafka's queue.buffering.max.messages
    as the bridge sets it) and delivers all of it once the cluster is back (the message
    timeout, 120 s, is longer than the outage); past that the bridge sheds load: bridge
    losses when the queue stays full, kernel losses while the drain loop waits on it.
    Every one is counted and placed; nothing reaches Kafka twice."""
    result: list[FloodResult] = []
    bootstrap = cluster.bootstrap_servers
    with flood(bootstrap, topic_prefix, tmp_path, result, usdt=USDT) as load:
        acked_before = load.watch.acked()
        struck = time.monotonic()
        for node in cluster.nodes:
            node.kill()
        wait(lambda: time.monotonic() - struck >= OUTAGE_S, OUTAGE_S + 5, "the outage to end")
        queued = load.watch.queued()
        restarted = time.monotonic()
        cluster.start(timeout=RECOVER_S)
        ready = time.monotonic() - restarted
        load.watch.wait_acks(queued, RECOVER_S, "what was queued in the outage delivered")
        delivered_queue = time.monotonic() - restarted
        wait(lambda: all_in_sync(load, cluster), RECOVER_S, "all in sync again")
        facts = {
            "down": f"{OUTAGE_S:.0f} s",
            "acked before": acked_before,
            "queued at restart": queued,
            "cluster ready after": f"{ready:.1f} s",
            "queue delivered by": f"{delivered_queue:.1f} s after the restart",
            "longest stall": f"{load.watch.longest_stall(struck):.1f} s",
        }
    streams = audit_exact(bootstrap, topic_prefix, result[0], frozenset({"bridge", "kernel"}))
    observed("d", streams, **facts)
    if OUTAGE_S * EVENTS_PER_S > 1.5 * QUEUE_MAX_MESSAGES:
        assert all(s.lost["bridge"] > 0 for s in streams.values()), "the queue never filled"
