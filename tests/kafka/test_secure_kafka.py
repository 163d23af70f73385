"""The bridge against a secured broker: SASL_SSL (PLAIN, SCRAM-SHA-512) and mutual TLS.

The broker is Kafka itself (bridge.localkafka.secure), with certificates openssl made
for this module; the bridge is the real one, fed by a scripted source. A refused
password or certificate must end startup with one clear error and nothing delivered, and
no secret may show up in anything the bridge writes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bridge.app import Bridge
from bridge.cli.main import main
from bridge.config import KafkaConfig, load_settings
from bridge.errors import KafkaSetupError
from bridge.localkafka.secure import BrokerSecurity, SecureBroker
from bridge.sinks.kafka.security import client_security
from bridge.sinks.kafka.topics import all_topics
from tests.support.pipeline import final_books, read_topics, verdicts
from tests.support.scripted import ScriptedSession, ScriptedSource
from tests.support.tls import Pki, make_pki

pytestmark = pytest.mark.kafka

# Distinctive, so that finding one in the bridge's output cannot be a coincidence.
PLAIN_USER, PLAIN_PASSWORD = "bridge-plain", "plainpw-4f1c9e07d2"
SCRAM_USER, SCRAM_PASSWORD = "bridge-scram", "scrampw-7a2e51b8c3"
PROBE_USER, PROBE_PASSWORD = "probe", "probepw-1b3d6a0f94"
KEY_PASSWORD = "keypw-5c8d2e6b1a"
BROKER_KEY_PASSWORD = "brokerkeypw-3d9f"
WRONG_PASSWORD = "wrongpw-9e4a7c3d05"
SECRETS = (PLAIN_PASSWORD, SCRAM_PASSWORD, KEY_PASSWORD, WRONG_PASSWORD)


@dataclass(frozen=True)
class SecureCluster:
    broker: SecureBroker
    pki: Pki


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    """A broker that takes only authenticated clients, for this module."""
    root = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(root / "pki", KEY_PASSWORD, BROKER_KEY_PASSWORD)
    security = BrokerSecurity(
        ca_file=pki.ca,
        keystore_file=pki.broker_keystore,
        key_password=pki.broker_key_password,
        plain_users={PLAIN_USER: PLAIN_PASSWORD, PROBE_USER: PROBE_PASSWORD},
        scram_users={SCRAM_USER: SCRAM_PASSWORD},
        probe_user=PROBE_USER,
    )
    broker = SecureBroker(root / "kafka", security)
    broker.start()
    try:
        yield SecureCluster(broker, pki)
    finally:
        broker.stop()


def kafka_section(bootstrap: str, prefix: str, **security: Any) -> dict[str, Any]:
    return {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "linger_ms": 1, **security}


def run_bridge(kafka: dict[str, Any], tmp_path: Path, count: int = 40) -> tuple[str, Path]:
    """The real bridge through one scripted session; its session id and status file."""
    settings = load_settings(None, {"usdt": {"binary": "/nonexistent"}, "kafka": kafka})
    session = ScriptedSession(count=count)
    status = tmp_path / "status.json"
    Bridge(settings, ScriptedSource([session]), status_file=status).run()
    return session.session_id, status


def assert_delivered(kafka: dict[str, Any], session_id: str, count: int = 40) -> None:
    """Read back with the same security: every record acked and the books balance."""
    config = KafkaConfig(**kafka)
    records = read_topics(
        kafka["bootstrap_servers"], kafka["topic_prefix"], client_security(config)
    )
    book = final_books(records)[(session_id, "mempool:added")]
    assert (book["fired"], book["acked"], book["in_flight"]) == (count, count, 0)
    assert all(v.ok for v in verdicts(records))


def test_sasl_plain_over_tls_delivers_with_the_password_from_the_environment(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__SASL__PASSWORD", PLAIN_PASSWORD)
    kafka = kafka_section(
        secure.broker.bootstrap_servers,
        topic_prefix,
        tls={"enabled": True, "ca_file": str(secure.pki.ca)},
        sasl={"mechanism": "PLAIN", "username": PLAIN_USER},
    )
    session_id, _ = run_bridge(kafka, tmp_path)
    assert_delivered({**kafka, "sasl": {**kafka["sasl"], "password": PLAIN_PASSWORD}}, session_id)


def test_scram_sha_512_delivers_with_the_password_from_a_file(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "scram-password"
    password_file.write_text(SCRAM_PASSWORD + "\n")
    kafka = kafka_section(
        secure.broker.bootstrap_servers,
        topic_prefix,
        tls={"enabled": True, "ca_file": str(secure.pki.ca)},
        sasl={
            "mechanism": "SCRAM-SHA-512",
            "username": SCRAM_USER,
            "password_file": str(password_file),
        },
    )
    session_id, _ = run_bridge(kafka, tmp_path)
    assert_delivered(kafka, session_id)


def test_a_client_certificate_with_an_encrypted_key_delivers(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path
) -> None:
    pki = secure.pki
    kafka = kafka_section(
        secure.broker.mtls_bootstrap_servers,
        topic_prefix,
        tls={
            "enabled": True,
            "ca_file": str(pki.ca),
            "cert_file": str(pki.client_cert),
            "key_file": str(pki.client_key_encrypted),
            "key_password": KEY_PASSWORD,
        },
    )
    session_id, _ = run_bridge(kafka, tmp_path)
    assert_delivered(kafka, session_id)


def test_the_mutual_tls_listener_refuses_a_client_without_a_certificate(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path
) -> None:
    """The counterpart of the test above: the certificate is what let the bridge in."""
    kafka = kafka_section(
        secure.broker.mtls_bootstrap_servers,
        topic_prefix,
        tls={"enabled": True, "ca_file": str(secure.pki.ca)},
        startup_timeout_s=10,
    )
    with pytest.raises(KafkaSetupError) as refused:
        run_bridge(kafka, tmp_path)
    message = str(refused.value)
    assert message.startswith(f"Kafka at {kafka['bootstrap_servers']} refused the TLS connection")
    assert "check kafka.tls.cert_file" in message


def cli_run(
    secure: SecureCluster, tmp_path: Path, prefix: str, kafka_toml: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], float]:
    """``tracebridge run`` as an operator starts it; its result and status file."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{secure.broker.bootstrap_servers}"\n'
        f'topic_prefix = "{prefix}"\nstartup_timeout_s = 20\n{kafka_toml}'
    )
    status = tmp_path / "status.json"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "run", "--config", str(config),
         "--binary", "/nonexistent", "--status-file", str(status)],
        capture_output=True, text=True, timeout=120, env={**_base_env(), **env}, check=False,
    )  # fmt: skip
    return result, json.loads(status.read_text()), time.monotonic() - started


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACEBRIDGE_")}


def assert_nothing_on(secure: SecureCluster, prefix: str) -> None:
    """Not a topic of the prefix exists (so not a record was delivered), as an
    authenticated client sees it."""
    config = KafkaConfig(
        bootstrap_servers=secure.broker.bootstrap_servers,
        tls={"enabled": True, "ca_file": secure.pki.ca},
        sasl={"mechanism": "PLAIN", "username": PLAIN_USER, "password": PLAIN_PASSWORD},
    )
    consumer = Consumer(
        {
            **client_security(config),
            "bootstrap.servers": secure.broker.bootstrap_servers,
            "group.id": "t",
        }
    )
    try:
        topics = consumer.list_topics(timeout=10).topics
    finally:
        consumer.close()
    assert not [t for t in topics if t.startswith(f"{prefix}.")]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_a_wrong_password_is_one_clear_error_at_startup(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path
) -> None:
    result, status, took = cli_run(
        secure,
        tmp_path,
        topic_prefix,
        f'[kafka.tls]\nenabled = true\nca_file = "{secure.pki.ca}"\n'
        f'[kafka.sasl]\nmechanism = "SCRAM-SHA-512"\nusername = "{SCRAM_USER}"\n',
        {"TRACEBRIDGE_KAFKA__SASL__PASSWORD": WRONG_PASSWORD},
    )
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert f"refused to authenticate user '{SCRAM_USER}' (SCRAM-SHA-512)" in lines[0]
    assert took < 15, "a refused login must not wait out startup_timeout_s"
    assert status["state"] == "failed"
    assert "books" not in status
    assert_nothing_on(secure, topic_prefix)
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout + json.dumps(status)


def test_an_untrusted_ca_is_one_clear_error_at_startup(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PLAIN_PASSWORD)
    result, status, took = cli_run(
        secure,
        tmp_path,
        topic_prefix,
        f'[kafka.tls]\nenabled = true\nca_file = "{secure.pki.other_ca}"\n'
        f'[kafka.sasl]\nmechanism = "PLAIN"\nusername = "{PLAIN_USER}"\n'
        f'password_file = "{password_file}"\n',
        {},
    )
    assert result.returncode == 1, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "TLS with Kafka at" in lines[0]
    assert "certificate verify failed" in lines[0]
    assert took < 15
    assert status["state"] == "failed"
    assert_nothing_on(secure, topic_prefix)
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout + json.dumps(status)


def raw_records(kafka: dict[str, Any]) -> list[bytes]:
    """Every key, header and value on the prefix's topics, as bytes: heartbeats included."""
    config = KafkaConfig(**kafka)
    consumer = Consumer(
        {**client_security(config), "bootstrap.servers": kafka["bootstrap_servers"],
         "group.id": "raw", "enable.partition.eof": True}
    )  # fmt: skip
    try:
        topics = consumer.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in all_topics(kafka["topic_prefix"])
            for p in topics[t].partitions
        ]
        consumer.assign(partitions)
        pending, out = len(partitions), []
        while pending:
            message = consumer.poll(10)
            assert message is not None, "the topics did not reach their end in time"
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                pending -= 1
                continue
            out += [message.key() or b"", message.value() or b""]
            out += [repr(header).encode() for header in message.headers() or []]
        return out
    finally:
        consumer.close()


def test_no_secret_appears_in_the_log_the_status_file_or_the_topics(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both kinds of secret in use at once (SCRAM password, client key passphrase),
    everything logged at debug, librdkafka's security debugging included."""
    pki = secure.pki
    kafka = kafka_section(
        secure.broker.bootstrap_servers,
        topic_prefix,
        tls={
            "enabled": True,
            "ca_file": str(pki.ca),
            "cert_file": str(pki.client_cert),
            "key_file": str(pki.client_key_encrypted),
            "key_password": KEY_PASSWORD,
        },
        sasl={"mechanism": "SCRAM-SHA-512", "username": SCRAM_USER, "password": SCRAM_PASSWORD},
        librdkafka={"debug": "security,broker,conf"},
    )
    caplog.set_level(logging.DEBUG)
    session_id, status = run_bridge(kafka, tmp_path)
    assert_delivered(kafka, session_id)
    written = {
        "log": "\n".join(r.getMessage() for r in caplog.records),
        "status file": status.read_text(),
        "topics": b"\n".join(raw_records(kafka)).decode(errors="replace"),
    }
    assert "SCRAM-SHA-512" in written["log"]  # the debug log did cover the login
    assert session_id in written["topics"]  # and the heartbeats were read
    for where, text in written.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in the {where}"


def test_tail_replay_and_audit_read_back_with_the_bridges_config(
    secure: SecureCluster, topic_prefix: str, tmp_path: Path
) -> None:
    """The commands that read the topics take the bridge's TOML file (--config)."""
    password_file = tmp_path / "scram-password"
    password_file.write_text(SCRAM_PASSWORD)
    bootstrap = secure.broker.bootstrap_servers
    sasl = {"mechanism": "SCRAM-SHA-512", "username": SCRAM_USER, "password_file": password_file}
    tls = {"enabled": True, "ca_file": secure.pki.ca}
    run_bridge(kafka_section(bootstrap, topic_prefix, tls=tls, sasl=sasl), tmp_path, count=25)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[kafka.tls]\nenabled = true\nca_file = "{secure.pki.ca}"\n'
        f'[kafka.sasl]\nmechanism = "SCRAM-SHA-512"\nusername = "{SCRAM_USER}"\n'
        f'password_file = "{password_file}"\n'
    )
    common = ["--config", str(config), "-b", bootstrap]
    runner = CliRunner()
    tail = runner.invoke(main, ["tail", *common, "--max", "25", f"{topic_prefix}.mempool"])
    assert tail.exit_code == 0, tail.output
    assert len(tail.stdout.splitlines()) == 25
    audit = runner.invoke(main, ["audit", *common, "--prefix", topic_prefix, "--require-closed"])
    assert audit.exit_code == 0, audit.output
    replayed = tmp_path / "replayed.jsonl"
    replay = runner.invoke(main, ["replay", *common, "--prefix", topic_prefix, "-o", str(replayed)])
    assert replay.exit_code == 0, replay.output
    assert len(replayed.read_text().splitlines()) == 25
