"""The broker's ``server.properties``: the config of shared/reference/kafka-local.md 1.5.

It is rendered from the run directory and the ports on every start, so a changed port or
a new default takes effect without anyone editing the file. Callers may add or override
settings through ``extra_properties``, except the keys the launcher itself depends on.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.localkafka import LocalKafkaError
from bridge.localservice.ports import HOST

# Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH is 4,000,000 bytes, and a whole P2P message
# (a block) must fit in one record plus the record-batch overhead; 8 MiB leaves 2x room
# instead of the 1 MiB default that would reject blocks (style.md 3.8).
MESSAGE_MAX_BYTES = 8 * 1024 * 1024

# Config keys derived from the run dir and ports; letting extra_properties override them
# would break readiness checks, the ownership check, or storage formatting.
MANAGED_KEYS = frozenset(
    {
        "process.roles",
        "node.id",
        "listeners",
        "advertised.listeners",
        "controller.listener.names",
        "controller.quorum.bootstrap.servers",
        "controller.quorum.voters",
        "inter.broker.listener.name",
        "listener.security.protocol.map",
        "log.dirs",
        "metadata.log.dir",
    }
)


@dataclass(frozen=True)
class ClusterRole:
    """One node's place in a multi-node cluster (``bridge.localkafka.cluster``).

    ``voters`` is the static quorum, ``1@127.0.0.1:19093,2@...``: every node is a voter,
    so storage is formatted without ``--standalone`` and a node restarted on its own
    ports rejoins the same quorum. ``size`` is how many nodes the cluster has.
    """

    node_id: int
    voters: str
    size: int

    @property
    def replication_factor(self) -> int:
        """Replicas of the internal topics: three when the cluster has them."""
        return min(3, self.size)

    @property
    def min_insync_replicas(self) -> int:
        """A majority of the replicas once there are three (two of three); else one."""
        rf = self.replication_factor
        return rf // 2 + 1 if rf >= 3 else 1


def cluster_properties(role: ClusterRole) -> dict[str, str]:
    """What a cluster node sets over the single node's defaults (kafka-local.md 1.11).

    Why these values: internal topics and topics created without a replication factor
    get three replicas, of which two must acknowledge (so one node may fail without
    stopping writes). A node that stops heartbeating is fenced after 4 s instead of 9:
    the fault tests kill and pause nodes, and every second of fencing is a second of
    stalled writes (the stall is what they measure, not what they wait for).
    """
    rf = str(role.replication_factor)
    min_isr = str(role.min_insync_replicas)
    return {
        "node.id": str(role.node_id),
        "controller.quorum.voters": role.voters,
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "unclean.leader.election.enable": "false",
        "broker.session.timeout.ms": "4000",
        # Must be at most half the session timeout (KafkaConfig warns otherwise).
        "broker.heartbeat.interval.ms": "1000",
        # Three JVMs share two cores: fewer I/O threads each (the single node has 4).
        "num.io.threads": "2",
    }


_HEADER = "# Written by bridge.localkafka.broker on every start; edits are overwritten.\n"


def check_extra_properties(extra_properties: Mapping[str, str]) -> None:
    """Refuse overrides of ``MANAGED_KEYS`` up front, when the broker is described."""
    clash = MANAGED_KEYS.intersection(extra_properties)
    if clash:
        raise LocalKafkaError(
            f"extra_properties may not set {', '.join(sorted(clash))}: "
            "LocalBroker derives them from run_dir and the ports."
        )


def render_server_properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    extra_properties: Mapping[str, str],
    cluster: ClusterRole | None = None,
) -> str:
    """Return the config of kafka-local.md 1.5, tuned for tests on a 2-core machine.

    With ``cluster``, the node is one of a static quorum (kafka-local.md 1.11) instead of
    a single node that elects itself.
    """
    listeners = f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}"
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A dynamic quorum (formatted with --standalone); a changed controller port on
        # restart is fine because the single voter elects itself.
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # One node: every internal topic must have RF 1, or consumer groups,
        # transactions and share groups fail to find enough replicas.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Default 3000 ms: every test consumer group would wait 3 s before its first fetch.
        "group.initial.rebalance.delay.ms": "0",
        # Tests and the bridge create their topics explicitly; a typo must fail loudly.
        "auto.create.topics.enable": "false",
        # Small-box tuning (defaults: network 3, io 8, dedupe buffer 128 MiB on the heap).
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        "message.max.bytes": str(MESSAGE_MAX_BYTES),
    }
    if cluster is not None:
        del props["controller.quorum.bootstrap.servers"]
        props.update(cluster_properties(cluster))
    props.update(extra_properties)
    lines = [f"{key}={_escape_property(value)}" for key, value in props.items()]
    return _HEADER + "\n".join(lines) + "\n"


def write_server_properties(
    path: Path,
    port: int,
    controller_port: int,
    data_dir: Path,
    extra_properties: Mapping[str, str],
    cluster: ClusterRole | None = None,
) -> None:
    """Render the config and write it to ``path``, replacing whatever was there."""
    text = render_server_properties(port, controller_port, data_dir, extra_properties, cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _escape_property(value: str) -> str:
    # java.util.Properties treats backslash as an escape character.
    return value.replace("\\", "\\\\")
