"""The local cluster's layout and config, without a JVM: what each node is told.

Starting real nodes is tests/kafka/test_cluster_faults.py's job; here are the rules a
wrong value of which would only show up there as a quorum that never forms.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.cluster import CLUSTER_FILE, ClusterLayout, LocalCluster, new_layout
from bridge.localkafka.properties import ClusterRole, render_server_properties


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return dict(pairs)


def test_a_single_node_is_rendered_as_before() -> None:
    props = properties(render_server_properties(19092, 19093, Path("/d"), {}))
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props
    assert props["offsets.topic.replication.factor"] == "1"
    assert "min.insync.replicas" not in props


def test_a_node_of_three_is_one_voter_of_a_static_quorum() -> None:
    layout = new_layout(3, 19092, "4.3.1")
    role = ClusterRole(2, layout.voters, layout.size)
    props = properties(render_server_properties(29092, 29093, Path("/d"), {}, role))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"
    )
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert props[key] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"


@pytest.mark.parametrize(("size", "rf", "min_isr"), [(2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_internal_topics_follow_the_size(size: int, rf: int, min_isr: int) -> None:
    role = ClusterRole(1, "", size)
    assert (role.replication_factor, role.min_insync_replicas) == (rf, min_isr)


def test_ports_follow_the_reference_layout_or_are_free() -> None:
    assert new_layout(3, 19092, "4.3.1").bootstrap_servers == (
        "127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"
    )
    free = new_layout(3, 0, "4.3.1").ports
    assert len({port for pair in free for port in pair}) == 6
    with pytest.raises(LocalKafkaError, match="needs port 79093, past 65535"):
        new_layout(7, 19092, "4.3.1")


def test_the_layout_is_kept_for_the_clusters_life(tmp_path: Path) -> None:
    layout = new_layout(3, 0, "4.3.1")
    layout.write(tmp_path / CLUSTER_FILE)
    assert ClusterLayout.read(tmp_path / CLUSTER_FILE) == layout
    found = LocalCluster.from_run_dir(tmp_path)
    assert found is not None
    assert [n.port for n in found.nodes] == [client for client, _ in layout.ports]
    assert LocalCluster.from_run_dir(tmp_path / "nothing") is None


def test_a_cluster_of_another_shape_is_refused_before_anything_runs(tmp_path: Path) -> None:
    new_layout(3, 0, "4.3.1").write(tmp_path / CLUSTER_FILE)
    with pytest.raises(LocalKafkaError, match="holds a 3-node cluster, not 5"):
        LocalCluster(tmp_path, brokers=5, port=0).start()
    with pytest.raises(LocalKafkaError, match=r"uses port \d+, not 19092"):
        LocalCluster(tmp_path, brokers=3, port=19092).start()
    (tmp_path / CLUSTER_FILE).write_text("{")
    with pytest.raises(LocalKafkaError, match="Cannot read"):
        LocalCluster(tmp_path)
