"""End-to-end checks of the local Kafka broker: real JVM, real ports, real librdkafka.

One broker is shared by the module (a start costs ~3 s of JVM time on 2 cores); the tests
that need a broker of their own are the ones about refusing to start or to signal.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

# Not from confluent_kafka.admin, where 2.16.1 documents it: that module does not re-export
# it explicitly, which strict mypy rejects. cimpl is where the class (and its stub) lives.
from confluent_kafka.cimpl import NewTopic

from bridge.localkafka import LocalKafkaError
from bridge.localkafka.broker import STATE_FILE, LocalBroker

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs java (Kafka 4 needs 17+)"),
]

# Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH: the largest P2P payload the bridge forwards.
MAX_P2P_MESSAGE = 4_000_000

# Generous next to the ~1 s a 1000-message round trip takes on loopback.
IO_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path_factory.mktemp("kafka") / "run", port=0) as running:
        yield running


def _create_topic(broker: LocalBroker, partitions: int = 1) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=IO_TIMEOUT_S)
    return name


def _produce(broker: LocalBroker, topic: str, values: list[bytes]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            # The client's own 1 MB default would reject MAX_P2P_MESSAGE before the broker.
            "message.max.bytes": 8 * 1024 * 1024,
        }
    )
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    for i, value in enumerate(values):
        producer.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(IO_TIMEOUT_S) == 0
    assert errors == []


def _consume(broker: LocalBroker, topic: str, expected: int) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"group-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + IO_TIMEOUT_S
        while len(received) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, msg.error()
                received.append(msg)
        # A short extra poll would reveal duplicates (idempotence failing).
        received.extend(consumer.consume(num_messages=10, timeout=0.5))
    finally:
        consumer.close()
    return received


def _pid_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    except FileNotFoundError:
        return True


def test_roundtrip_1000_messages(broker: LocalBroker) -> None:
    topic = _create_topic(broker, partitions=3)
    values = [f"event-{i:04d}".encode() for i in range(1000)]
    _produce(broker, topic, values)

    received = _consume(broker, topic, len(values))

    assert len(received) == len(values)
    assert sorted(msg.value() or b"" for msg in received) == values
    for msg in received:
        assert msg.value() == f"event-{int(msg.key() or b'-1'):04d}".encode()
    # Per-partition order is what Kafka promises; keys were produced in increasing order.
    for partition in {msg.partition() for msg in received}:
        keys = [int(msg.key() or b"-1") for msg in received if msg.partition() == partition]
        assert keys == sorted(keys)


def test_max_p2p_message_fits(broker: LocalBroker) -> None:
    topic = _create_topic(broker)
    payload = os.urandom(MAX_P2P_MESSAGE)
    _produce(broker, topic, [payload])

    received = _consume(broker, topic, 1)

    assert [msg.value() for msg in received] == [payload]


def test_start_again_is_a_noop(broker: LocalBroker) -> None:
    before = broker.status()
    assert before.running

    broker.start()
    # A second object (as a second CLI invocation would build) adopts the same broker.
    other = LocalBroker(broker.run_dir, port=0)
    other.start()

    assert broker.status() == before
    assert other.status() == before
    assert other.bootstrap_servers == broker.bootstrap_servers


def test_from_run_dir_sees_the_running_broker(broker: LocalBroker) -> None:
    other = LocalBroker.from_run_dir(broker.run_dir)

    assert other.status() == broker.status()
    assert other.bootstrap_servers == broker.bootstrap_servers


def test_stop_leaves_no_process_and_restart_keeps_data(broker: LocalBroker) -> None:
    topic = _create_topic(broker)
    _produce(broker, topic, [b"survives a restart"])
    pid = broker.status().pid
    assert pid is not None

    assert broker.stop() is True

    assert _pid_gone(pid)
    assert not (broker.run_dir / STATE_FILE).exists()
    assert not broker.status().running
    assert broker.stop() is False

    # Restart for the tests that follow; storage is formatted once, so the topic is still there.
    broker.start()
    assert broker.status().pid not in (None, pid)
    assert [msg.value() for msg in _consume(broker, topic, 1)] == [b"survives a restart"]


def test_stop_never_signals_a_foreign_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    foreign = subprocess.Popen(["sleep", "60"])
    try:
        state = {
            "pid": foreign.pid,
            "port": 1,
            "controller_port": 2,
            "bootstrap_servers": "127.0.0.1:1",
            "cmdline_marker": str(run_dir / "server.properties"),
            "kafka_version": "4.3.1",
            "started_at": "2026-01-01T00:00:00+00:00",
        }
        (run_dir / STATE_FILE).write_text(json.dumps(state))
        broker = LocalBroker.from_run_dir(run_dir)

        assert not broker.status().running
        assert broker.stop() is False

        assert foreign.poll() is None, "stop() signalled a process it did not start"
        assert not (run_dir / STATE_FILE).exists()
    finally:
        foreign.kill()
        foreign.wait()


def test_busy_port_fails_fast_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = LocalBroker(tmp_path / "run", port=port)

        with pytest.raises(
            LocalKafkaError, match=rf"port {port} on 127\.0\.0\.1 is already in use"
        ):
            broker.start()

        # Failed before writing anything, so before any JVM (format or broker) ran.
        assert not (tmp_path / "run" / "server.properties").exists()
        assert not (tmp_path / "run" / STATE_FILE).exists()


def test_broker_that_dies_reports_its_output(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "run", port=0, jvm_options=["-XX:+NoSuchFlag"])

    with pytest.raises(LocalKafkaError, match="exited with status 1") as info:
        broker.start()

    assert "Unrecognized VM option 'NoSuchFlag'" in str(info.value)
    assert not broker.status().running
    assert not (tmp_path / "run" / STATE_FILE).exists()
