"""Topic names, and creating the topics the bridge writes to.

One topic per subsystem keeps each consumer's reading to what it needs (a mempool
pipeline never reads P2P traffic); the node id is the message key, so one node's events
stay in order within a partition even when many nodes share a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it for mypy

from bridge.config import KafkaConfig
from bridge.errors import KafkaSetupError
from bridge.events.catalog import TOPIC_SUBSYSTEMS

log = logging.getLogger(__name__)

BRIDGE_SUFFIX = "bridge"
DEAD_LETTER_SUFFIX = "deadletter"


def event_topic(prefix: str, subsystem: str) -> str:
    return f"{prefix}.{subsystem}"


def bridge_topic(prefix: str) -> str:
    """Heartbeats: the ledger that closes every stream's books."""
    return f"{prefix}.{BRIDGE_SUFFIX}"


def dead_letter_topic(prefix: str) -> str:
    return f"{prefix}.{DEAD_LETTER_SUFFIX}"


def all_topics(prefix: str, subsystems: Iterable[str] = TOPIC_SUBSYSTEMS) -> list[str]:
    return [
        *(event_topic(prefix, s) for s in subsystems),
        bridge_topic(prefix),
        dead_letter_topic(prefix),
    ]


def admin_client(config: KafkaConfig) -> AdminClient:
    conf: dict[str, Any] = {  # Any: the stubs omit the logger option
        "bootstrap.servers": _servers(config),
        "logger": logging.getLogger("librdkafka"),  # not librdkafka's raw stderr lines
    }
    conf.update(config.librdkafka)
    return AdminClient(conf)


def _servers(config: KafkaConfig) -> str:
    if not config.bootstrap_servers:
        raise KafkaSetupError("kafka.bootstrap_servers is not set")
    return config.bootstrap_servers


def check_reachable(admin: AdminClient, config: KafkaConfig) -> None:
    """Fail fast with a clear message when no broker answers."""
    timeout_s = config.startup_timeout_s
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise KafkaSetupError(
            f"Kafka at {config.bootstrap_servers} did not answer within {timeout_s:.0f} s "
            f"({error.args[0]}); is the broker running? (`tracebridge kafka start` runs one)"
        ) from None


def ensure_topics(
    config: KafkaConfig, topics: Iterable[str], max_message_bytes: int, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics; return the ones created. Existing topics are left as is."""
    admin = admin_client(config)
    check_reachable(admin, config)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [t for t in topics if t not in existing]
    if not wanted:
        return []
    topic_config = {"max.message.bytes": str(max_message_bytes)}
    futures = admin.create_topics(
        [
            NewTopic(t, config.partitions, config.replication_factor, config=topic_config)
            for t in wanted
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result()
            created.append(topic)
        except KafkaException as error:
            if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another bridge of the cluster created it first
            raise KafkaSetupError(f"cannot create topic {topic}: {error.args[0].str()}") from None
    if created:
        log.info("Created topics: %s.", ", ".join(created))
    return created
