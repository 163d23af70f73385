"""How the topics the bridge creates are replicated: from the cluster's size, unless set."""

from __future__ import annotations

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError, KafkaSetupError
from bridge.sinks.kafka.topics import Replication, replication_for


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [
        (1, Replication(1, 1)),
        (2, Replication(2, 1)),
        (3, Replication(3, 2)),
        (6, Replication(3, 2)),
    ],
)
def test_defaults_follow_the_cluster(brokers: int, expected: Replication) -> None:
    assert replication_for(load_settings(None, {}).kafka, brokers) == expected


def test_configured_values_win() -> None:
    kafka = load_settings(None, {"kafka": {"replication_factor": 5}}).kafka
    assert replication_for(kafka, 6) == Replication(5, 3)
    kafka = load_settings(None, {"kafka": {"min_insync_replicas": 3}}).kafka
    assert replication_for(kafka, 3) == Replication(3, 3)
    with pytest.raises(KafkaSetupError, match="min_insync_replicas is 3 but topics get 1"):
        replication_for(kafka, 1)


def test_more_in_sync_than_replicas_is_refused_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"min_insync_replicas \(3\) exceeds replication_factor"):
        load_settings(None, {"kafka": {"replication_factor": 2, "min_insync_replicas": 3}})
