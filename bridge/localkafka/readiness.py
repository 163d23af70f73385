"""Decide when a starting broker is ready: it serves metadata, not merely an open port.

The socket server binds before the broker has caught up with the metadata log and
registered itself, and requests sent in between fail; so readiness is a successful
metadata request that lists exactly this one broker. A broker that dies meanwhile is
reported at once, with its output, instead of after the whole timeout.
"""

import logging
import subprocess
import time
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.jvm import log_tail
from bridge.localkafka.ports import HOST, port_accepts
from bridge.localkafka.process import POLL_INTERVAL_S, carries_marker
from bridge.localkafka.rundir import RunDir

# Per-attempt metadata timeout while waiting for readiness; librdkafka needs one round trip
# on loopback, so 2 s only runs out when the broker is not answering yet.
PROBE_TIMEOUT_S = 2.0


class BrokerExitedError(LocalKafkaError):
    """The broker died before it became ready; the message carries the end of its output.

    A subclass so that the caller can forget the dead process (and its broker.json)
    before passing the error on.
    """


def wait_until_ready(
    pid: int,
    port: int,
    deadline: float,
    child: subprocess.Popen[bytes] | None,
    run_dir: RunDir,
) -> None:
    """Return once the broker ``pid`` serves metadata on ``port`` listing one broker.

    ``deadline`` is a ``time.monotonic()`` value; ``child`` is the ``Popen`` this process
    started, if any. Raises ``BrokerExitedError`` if the broker dies and ``LocalKafkaError``
    if time runs out, both quoting the end of ``broker.out``.
    """
    log_path = run_dir.broker_out

    def check_alive() -> None:
        _raise_if_exited(pid, child, run_dir.marker, log_path)

    def not_ready(problem: str) -> LocalKafkaError:
        return LocalKafkaError(
            f"The Kafka broker (pid {pid}) was not ready at {HOST}:{port} in time: "
            f"{problem}.\n{log_tail(log_path)}"
        )

    # Wait for the port first, so librdkafka does not log a "Connection refused" per
    # retry while the JVM boots.
    while not port_accepts(port, POLL_INTERVAL_S):
        check_alive()
        if time.monotonic() >= deadline:
            raise not_ready("the client port never opened")
        time.sleep(POLL_INTERVAL_S)

    probe = AdminClient(
        {
            "bootstrap.servers": f"{HOST}:{port}",
            # The default backoff grows to 10 s, which would add seconds of latency to
            # a broker that comes up between two attempts.
            "reconnect.backoff.max.ms": 500,
        },
        # Route librdkafka's own log lines through logging instead of raw stderr.
        logger=logging.getLogger(f"{__name__}.probe"),
    )
    with probe:
        while True:
            check_alive()
            try:
                brokers = len(probe.list_topics(timeout=PROBE_TIMEOUT_S).brokers)
            except KafkaException as exc:
                problem = str(exc)
            else:
                if brokers == 1:
                    return
                problem = f"metadata lists {brokers} brokers, expected 1"
            if time.monotonic() >= deadline:
                raise not_ready(problem)
            # Serves the queued log lines to the logger while pausing between attempts.
            probe.poll(POLL_INTERVAL_S)


def _raise_if_exited(
    pid: int, child: subprocess.Popen[bytes] | None, marker: str, log_path: Path
) -> None:
    if child is not None and child.pid == pid:
        # Our own child: poll() also reaps it and tells the exit status.
        code = child.poll()
        if code is None:
            return
        raise BrokerExitedError(
            f"The Kafka broker exited with status {code} before it became ready.\n"
            f"{log_tail(log_path)}"
        )
    if not carries_marker(pid, marker):
        raise BrokerExitedError(
            f"The Kafka broker (pid {pid}) exited before it became ready.\n{log_tail(log_path)}"
        )
