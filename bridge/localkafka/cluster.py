"""A local Kafka cluster of N nodes, each a KRaft broker and controller in its own JVM.

Why a cluster of our own: replication (three replicas, two of which must acknowledge) is
what keeps the bridge's records when a broker crashes, pauses or restarts, and that can
only be shown against real brokers failing. The nodes run from the same cached jars as
the single broker (``bridge.localkafka.jars``), with the layout of
shared/reference/kafka-local.md 1.11: a static quorum of every node, one cluster id.

Everything lives under one run directory::

    <run_dir>/cluster.json      the cluster id and every node's ports: fixed for its life
    <run_dir>/broker-<i>/       node i's own run directory (``bridge.localkafka.rundir``)

The ports are fixed once (``controller.quorum.voters`` names them, so a node restarted on
other ports would not rejoin its quorum), and each node's data is formatted once, so a
stopped cluster starts again with its topics. Each node is a ``LocalBroker`` owned
through its own run directory: stopping one from another process needs nothing but the
directory, as for the single broker.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.broker import DEFAULT_PORT, BrokerStatus, LocalBroker
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_jars
from bridge.localkafka.jvm import broker_command, find_java, format_storage_once, kafka_uuid
from bridge.localkafka.properties import ClusterRole, write_server_properties
from bridge.localkafka.readiness import metadata_attempts
from bridge.localservice.ports import HOST, resolve_ports
from bridge.localservice.process import POLL_INTERVAL_S
from bridge.localservice.state import write_json_atomically

CLUSTER_FILE = "cluster.json"

# kafka-local.md 1.7 for three brokers on one 2-core box: half the single broker's heap
# each (measured RSS ~400 MB per node under the fault tests' load), the same G1 flags.
CLUSTER_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

# Node i listens on port + (i-1) * PORT_STRIDE for clients and one above for its controller:
# 19092/19093, 29092/29093, 39092/39093 (the reference's layout, kafka-local.md 1.11).
PORT_STRIDE = 10_000

# Starting three JVMs on two cores takes 3x the single broker's CPU, and no node is ready
# before a majority of the quorum is up.
START_TIMEOUT_S = 180.0


def member_dir(run_dir: Path, node_id: int) -> Path:
    """Node ``node_id``'s own run directory inside the cluster's."""
    return run_dir / f"broker-{node_id}"


@dataclass(frozen=True)
class ClusterLayout:
    """``cluster.json``: the cluster id and each node's (client, controller) ports."""

    cluster_id: str
    kafka_version: str
    ports: tuple[tuple[int, int], ...]
    """Node ``i`` (from 1) listens on ``ports[i - 1]``."""

    @property
    def size(self) -> int:
        return len(self.ports)

    @property
    def voters(self) -> str:
        """``controller.quorum.voters``: every node is a voter."""
        return ",".join(
            f"{i}@{HOST}:{controller}" for i, (_, controller) in enumerate(self.ports, start=1)
        )

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, so a client finds the cluster with any node down."""
        return ",".join(f"{HOST}:{client}" for client, _ in self.ports)

    @classmethod
    def read(cls, path: Path) -> ClusterLayout | None:
        """The layout in ``path``, or None when there is none; unreadable is an error,
        because the nodes' data was formatted for the id it holds."""
        try:
            raw: Any = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LocalKafkaError(f"Cannot read {path}: {exc}") from exc
        try:
            ports = tuple((int(client), int(controller)) for client, controller in raw["ports"])
            return cls(str(raw["cluster_id"]), str(raw["kafka_version"]), ports)
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalKafkaError(f"{path} is not a cluster layout ({exc!r}).") from exc

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(
            path,
            {
                "cluster_id": self.cluster_id,
                "kafka_version": self.kafka_version,
                "ports": [list(pair) for pair in self.ports],
            },
        )


def new_layout(size: int, port: int, kafka_version: str) -> ClusterLayout:
    """Ports for ``size`` nodes: ``port`` and its strides, or free ones when it is 0."""
    if port:
        ports = [(port + i * PORT_STRIDE, port + i * PORT_STRIDE + 1) for i in range(size)]
        if ports[-1][1] > 65535:
            raise LocalKafkaError(
                f"A {size}-node cluster from port {port} needs port {ports[-1][1]}, past "
                f"65535 (node i uses port + (i-1) x {PORT_STRIDE}); pass --port 0 for free ports."
            )
    else:
        free = resolve_ports([None] * (2 * size))
        ports = [(free[2 * i], free[2 * i + 1]) for i in range(size)]
    return ClusterLayout(kafka_uuid(), kafka_version, tuple(ports))


class ClusterBroker(LocalBroker):
    """One node of a ``LocalCluster``: a ``LocalBroker`` in a static quorum.

    Besides start and stop it can be crashed (``kill``: SIGKILL, no controlled shutdown)
    and paused (``pause``/``resume``: SIGSTOP/SIGCONT, alive but silent), which is what
    the fault tests do to it; like ``stop()``, they signal only this run directory's JVM.
    """

    def __init__(
        self,
        run_dir: Path,
        role: ClusterRole,
        cluster_id: str,
        port: int,
        controller_port: int,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        jvm_options: Sequence[str] = CLUSTER_JVM_OPTIONS,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        """Describe node ``role.node_id``; nothing happens until ``start()``."""
        super().__init__(
            run_dir, port, controller_port, kafka_version, jvm_options, extra_properties
        )
        self.role = role
        self.cluster_id = cluster_id

    @property
    def node_id(self) -> int:
        return self.role.node_id

    @classmethod
    def _from_state(cls, run_dir: Path, state: Any) -> Self:
        raise NotImplementedError(
            "a cluster node is rebuilt from its cluster's layout: LocalCluster.from_run_dir"
        )

    def _provision(self, ports: tuple[int, ...]) -> list[str]:
        port, controller_port = ports
        libs = ensure_jars(self.version)
        java = find_java()
        self._dir.logs.mkdir(parents=True, exist_ok=True)
        write_server_properties(
            self.config_path,
            port,
            controller_port,
            self._dir.data,
            self._extra_properties,
            self.role,
        )
        format_storage_once(java, libs, self._dir, cluster_id=self.cluster_id)
        return broker_command(java, libs, self._jvm_options, self._dir)

    def _readiness_attempts(self) -> Generator[str | None, None, None]:
        return metadata_attempts(self.port, brokers=self.role.size)

    # -- faults -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The running node's pid; raises if it does not run."""
        status = self.status()
        if status.pid is None:
            raise LocalKafkaError(f"Node {self.node_id} does not run ({self.run_dir}).")
        return status.pid

    def kill(self, timeout: float = 10.0) -> None:
        """Crash the node: SIGKILL, so no controlled shutdown moves its leaderships first.

        Returns once it is gone and its ports are closed; its data stays, and ``start()``
        brings it back on the same ports.
        """
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        try:
            # Our child (whichever object of this process started it): reap it, so it
            # is gone rather than a zombie holding nothing but a pid.
            os.waitpid(pid, 0)
        except ChildProcessError:
            deadline = time.monotonic() + timeout  # another process's: its parent reaps
            while self._owns(pid) and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL_S)
        self._reap()

    def pause(self) -> None:
        """Freeze the node (SIGSTOP): its sockets stay open and nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused node run again (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)


@dataclass(frozen=True)
class ClusterStatus:
    """Every node's status, node 1 first."""

    nodes: tuple[BrokerStatus, ...]

    @property
    def running(self) -> int:
        """How many nodes run."""
        return sum(node.running for node in self.nodes)


class LocalCluster:
    """N ``ClusterBroker`` nodes on 127.0.0.1 under one run directory (module docstring).

    ``start()`` and ``stop()`` are idempotent, like the single broker's: nodes that
    already run are adopted, and stopping a stopped cluster is a no-op.
    """

    def __init__(
        self,
        run_dir: Path,
        brokers: int = 3,
        port: int = DEFAULT_PORT,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        jvm_options: Sequence[str] = CLUSTER_JVM_OPTIONS,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        """Describe a cluster of ``brokers`` nodes; ``port`` 0 picks free ports (once:
        they are kept in cluster.json for the cluster's life)."""
        if brokers < 2:
            raise ValueError(f"a cluster has at least 2 nodes, not {brokers} (LocalBroker: 1)")
        self.run_dir = run_dir.expanduser().resolve()
        self._size = brokers
        self._port = port
        self._version = kafka_version
        self._jvm_options = tuple(jvm_options)
        self._extra_properties = dict(extra_properties or {})
        self._nodes: list[ClusterBroker] = []
        layout = ClusterLayout.read(self.layout_path)
        if layout is not None:
            self._nodes = self._build(layout)

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> LocalCluster | None:
        """The cluster whose layout ``run_dir`` holds (started by any process), or None."""
        layout = ClusterLayout.read(run_dir.expanduser().resolve() / CLUSTER_FILE)
        if layout is None:
            return None
        return cls(run_dir, layout.size, layout.ports[0][0], layout.kafka_version)

    @staticmethod
    def holds_cluster(run_dir: Path) -> bool:
        """Whether ``run_dir`` is a cluster's (it has a cluster.json)."""
        return (run_dir.expanduser().resolve() / CLUSTER_FILE).is_file()

    @property
    def layout_path(self) -> Path:
        return self.run_dir / CLUSTER_FILE

    @property
    def nodes(self) -> list[ClusterBroker]:
        """Node 1 first; empty until the cluster was started once."""
        return list(self._nodes)

    def node(self, node_id: int) -> ClusterBroker:
        """Node ``node_id`` (Kafka's broker id, from 1)."""
        for node in self._nodes:
            if node.node_id == node_id:
                return node
        raise LocalKafkaError(f"No node {node_id} in the cluster at {self.run_dir}.")

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated; known once started."""
        layout = ClusterLayout.read(self.layout_path)
        if layout is None:
            raise LocalKafkaError("The cluster's ports are chosen at start(); start it first.")
        return layout.bootstrap_servers

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start every node (or adopt those that run) and return once each lists them all.

        The nodes start side by side: none is ready before a majority of the quorum
        runs, so waiting for one before starting the next would never end. If any fails,
        every node is stopped again and its error raised.
        """
        single = LocalBroker.from_run_dir(self.run_dir)
        if single.status().running:
            raise LocalKafkaError(
                f"A single Kafka broker runs in {self.run_dir}; stop it first or choose "
                "another --run-dir for the cluster."
            )
        layout = ClusterLayout.read(self.layout_path)
        if layout is None:
            layout = new_layout(self._size, self._port, self._version)
            layout.write(self.layout_path)
        self._check(layout)
        if not self._nodes:
            # Kept once built: a node this object restarted is its child, and only the
            # object that started it can reap it.
            self._nodes = self._build(layout)
        ensure_jars(self._version)  # once, before the nodes' threads all ask for it
        with ThreadPoolExecutor(len(self._nodes), thread_name_prefix="kafka-node") as pool:
            futures = [pool.submit(node.start, timeout) for node in self._nodes]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            self.stop()
            raise failed[0]

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node (SIGTERM, side by side), killing any still up after ``timeout``.

        Side by side, because a node shutting down alone after the others lost its quorum
        waits in vain for the controller to approve its controlled shutdown. Returns
        whether any node was stopped.
        """
        if not self._nodes:
            return False
        with ThreadPoolExecutor(len(self._nodes), thread_name_prefix="kafka-stop") as pool:
            stopped = list(pool.map(lambda node: node.stop(timeout), self._nodes))
        return any(stopped)

    def status(self) -> ClusterStatus:
        return ClusterStatus(tuple(node.status() for node in self._nodes))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------

    def _check(self, layout: ClusterLayout) -> None:
        """Refuse to start what the run dir's layout is not (another size, other ports)."""
        if layout.size != self._size:
            raise LocalKafkaError(
                f"{self.run_dir} holds a {layout.size}-node cluster, not {self._size}; "
                "stop it and remove the directory, or choose another --run-dir."
            )
        first = layout.ports[0][0]
        if self._port not in (0, first):
            raise LocalKafkaError(
                f"The cluster in {self.run_dir} uses port {first}, not {self._port}; "
                "remove the directory to change ports."
            )
        if layout.kafka_version != self._version:
            raise LocalKafkaError(
                f"The cluster in {self.run_dir} was made by Kafka {layout.kafka_version}, "
                f"not {self._version}."
            )

    def _build(self, layout: ClusterLayout) -> list[ClusterBroker]:
        return [
            ClusterBroker(
                member_dir(self.run_dir, node_id),
                ClusterRole(node_id, layout.voters, layout.size),
                layout.cluster_id,
                client,
                controller,
                layout.kafka_version,
                self._jvm_options,
                self._extra_properties,
            )
            for node_id, (client, controller) in enumerate(layout.ports, start=1)
        ]


__all__ = [
    "CLUSTER_FILE",
    "CLUSTER_JVM_OPTIONS",
    "ClusterBroker",
    "ClusterLayout",
    "ClusterStatus",
    "LocalCluster",
]
