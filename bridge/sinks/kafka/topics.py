"""Topic names, and creating the topics the bridge writes to.

One topic per subsystem keeps each consumer's reading to what it needs (a mempool
pipeline never reads P2P traffic); the node id is the message key, so one node's events
stay in order within a partition even when many nodes share a cluster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it for mypy

from bridge.config import KafkaConfig
from bridge.errors import KafkaSetupError
from bridge.events.catalog import TOPIC_SUBSYSTEMS
from bridge.sinks.kafka.client_log import ClientLog
from bridge.sinks.kafka.security import client_security, new_client, refusal

log = logging.getLogger(__name__)

BRIDGE_SUFFIX = "bridge"
DEAD_LETTER_SUFFIX = "deadletter"
# One metadata request of the startup check; a refusal is reported after at most this.
ATTEMPT_S = 1.0


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


class ReportingAdmin(AdminClient):
    """An admin client that keeps the client errors librdkafka reports, so startup can
    tell a refused login or TLS handshake from a broker that does not answer."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.errors: list[KafkaError] = []
        with_callback: dict[str, Any] = {**conf, "error_cb": self.errors.append}
        super().__init__(with_callback)


def admin_client(config: KafkaConfig) -> AdminClient:
    conf: dict[str, Any] = {  # Any: the stubs omit the logger option
        "bootstrap.servers": _servers(config),
        # Its failures are raised as one clear error; its FAIL lines would repeat them.
        "logger": ClientLog(hushed=True),
        **client_security(config),
    }
    conf.update(config.librdkafka)
    return new_client(lambda: ReportingAdmin(conf))


def _servers(config: KafkaConfig) -> str:
    if not config.bootstrap_servers:
        raise KafkaSetupError("kafka.bootstrap_servers is not set")
    return config.bootstrap_servers


def check_reachable(admin: AdminClient, config: KafkaConfig) -> None:
    """Fail fast with a clear message when no broker answers, or when one refuses our
    credentials or we refuse its certificate (asked in short slices: librdkafka retries a
    refused handshake forever, and the first refusal is the answer)."""
    timeout_s = config.startup_timeout_s
    deadline = time.monotonic() + timeout_s
    errors = admin.errors if isinstance(admin, ReportingAdmin) else []
    while True:
        attempt_end = min(time.monotonic() + ATTEMPT_S, deadline)
        try:
            admin.list_topics(timeout=max(0.1, attempt_end - time.monotonic()))
            return
        except KafkaException as error:
            last = error
        # Serves error_cb; waits out the attempt when the request failed early.
        admin.poll(max(0.0, attempt_end - time.monotonic()))
        reason = refusal(config, errors)
        if reason is not None:
            raise KafkaSetupError(reason)
        if time.monotonic() >= deadline:
            raise KafkaSetupError(
                f"Kafka at {config.bootstrap_servers} did not answer within {timeout_s:.0f} s "
                f"({last.args[0]}); is the broker running? (`tracebridge kafka start` runs one)"
            )


@dataclass(frozen=True)
class Replication:
    """How created topics are replicated: ``factor`` copies, ``min_insync`` of which must
    hold a record before Kafka acknowledges it to an ``acks=all`` producer."""

    factor: int
    min_insync: int


def replication_for(config: KafkaConfig, brokers: int) -> Replication:
    """The configured replication, or what suits a cluster of ``brokers``.

    Why these defaults: three replicas with two in sync is the usual choice for data that
    must survive a broker (one may crash, pause or restart and writes go on; a record
    acknowledged is on two disks). A smaller cluster cannot hold three, so each broker
    holds one, with one in sync: a 2-broker cluster would otherwise stop taking writes
    whenever either broker is away.
    """
    factor = config.replication_factor or min(3, max(1, brokers))
    min_insync = config.min_insync_replicas or (factor // 2 + 1 if factor >= 3 else 1)
    if min_insync > factor:
        raise KafkaSetupError(
            f"kafka.min_insync_replicas is {min_insync} but topics get {factor} replica(s): "
            "Kafka would refuse every acks=all write; set kafka.replication_factor too"
        )
    return Replication(factor, min_insync)


def ensure_topics(
    config: KafkaConfig, topics: Iterable[str], max_message_bytes: int, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics; return the ones created. Existing topics are left as is.

    Unless configured, the replication follows the size of the cluster as its metadata
    lists it now (``replication_for``): a broker that is down at this moment is not
    counted, and Kafka would refuse more replicas than live brokers anyway.
    """
    admin = admin_client(config)
    check_reachable(admin, config)
    metadata = admin.list_topics(timeout=timeout_s)
    existing = set(metadata.topics)
    wanted = [t for t in topics if t not in existing]
    if not wanted:
        return []
    replication = replication_for(config, len(metadata.brokers))
    topic_config = {
        "max.message.bytes": str(max_message_bytes),
        "min.insync.replicas": str(replication.min_insync),
    }
    futures = admin.create_topics(
        [NewTopic(t, config.partitions, replication.factor, config=topic_config) for t in wanted],
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
    # Also the ones another bridge created first: they may not be served yet either.
    _wait_until_served(admin, wanted, deadline=time.monotonic() + timeout_s)
    if created:
        log.info(
            "Created topics (%d replica(s), min.insync.replicas %d; %d broker(s) listed): %s.",
            replication.factor,
            replication.min_insync,
            len(metadata.brokers),
            ", ".join(created),
        )
    return created


def _wait_until_served(admin: AdminClient, topics: list[str], deadline: float) -> None:
    """Return once the brokers' metadata lists every partition of ``topics`` with a leader.

    Why: CreateTopics answers when the controller has committed the topic, before the
    brokers serve it. A producer that asks in between is told the topic does not exist;
    librdkafka then drops its partition objects, and their idempotence sequence counters
    with them (librdkafka issue 3712). Records sent before that and again after are
    taken by the broker for duplicates: acknowledged, never written. CI caught the
    first records of a session acknowledged and missing this way."""
    waiting = set(topics)
    while waiting:
        try:
            metadata = admin.list_topics(timeout=max(0.1, deadline - time.monotonic()))
        except KafkaException as error:
            raise KafkaSetupError(f"cannot list new topics: {error.args[0].str()}") from None
        waiting -= {topic for topic in waiting if _served(metadata.topics.get(topic))}
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise KafkaSetupError(
                f"created topics not served by the brokers in time: {', '.join(sorted(waiting))}"
            )
        time.sleep(0.05)


def _served(meta: Any) -> bool:
    """A topic's metadata lists partitions, each with a leader and no error."""
    if meta is None or meta.error is not None or not meta.partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in meta.partitions.values())
