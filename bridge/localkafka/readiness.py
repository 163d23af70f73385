"""Decide when a starting broker is ready: it serves metadata, not merely an open port.

The socket server binds before the broker has caught up with the metadata log and
registered itself, and requests sent in between fail; so readiness is a successful
metadata request that lists exactly the cluster's brokers (one, for a single node).
``LocalService`` runs these attempts, and reports at once, with its output, a broker that
dies meanwhile.
"""

import logging
import time
from collections.abc import Generator, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bridge.localservice.ports import HOST, port_accepts
from bridge.localservice.process import POLL_INTERVAL_S

# Per-attempt metadata timeout while waiting for readiness; librdkafka needs one round trip
# on loopback, so 2 s only runs out when the broker is not answering yet.
PROBE_TIMEOUT_S = 2.0


def metadata_attempts(
    port: int, client_config: Mapping[str, str] | None = None, brokers: int = 1
) -> Generator[str | None, None, None]:
    """Yield None once a broker on ``port`` serves metadata listing ``brokers`` brokers,
    else why not.

    The shape ``LocalService._readiness_attempts`` asks for: it pauses between attempts
    and never ends; closing it closes the probe client. ``client_config`` is what a
    secured listener asks of its clients (TLS, SASL). A node of a cluster is ready once
    it lists every node: only then has it caught up with the metadata log and been
    unfenced, and only then can topics with three replicas be created.
    """
    # Wait for the port first, so librdkafka does not log a "Connection refused" per
    # retry while the JVM boots.
    while not port_accepts(port, POLL_INTERVAL_S):
        yield "the client port never opened"
        time.sleep(POLL_INTERVAL_S)

    probe = AdminClient(
        {
            "bootstrap.servers": f"{HOST}:{port}",
            # The default backoff grows to 10 s, which would add seconds of latency to
            # a broker that comes up between two attempts.
            "reconnect.backoff.max.ms": 500,
            **(client_config or {}),
        },
        # Route librdkafka's own log lines through logging instead of raw stderr.
        logger=logging.getLogger(f"{__name__}.probe"),
    )
    with probe:
        while True:
            try:
                listed = len(probe.list_topics(timeout=PROBE_TIMEOUT_S).brokers)
            except KafkaException as exc:
                yield str(exc)
            else:
                yield (
                    None
                    if listed == brokers
                    else f"metadata lists {listed} brokers, expected {brokers}"
                )
            # Serves the queued log lines to the logger while pausing between attempts.
            probe.poll(POLL_INTERVAL_S)
