"""kafka.tls and kafka.sasl: validated once, turned into librdkafka settings in one place,
and never echoed. The broker side is tests/kafka/test_secure_kafka.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from bridge.config import KafkaConfig, load_settings
from bridge.errors import ConfigError, KafkaSetupError
from bridge.sinks.kafka.producer import KafkaSink, producer_config
from bridge.sinks.kafka.security import client_security, refusal
from bridge.sinks.kafka.topics import admin_client
from tests.support.tls import make_ca

SECRET = "s3cret-value-81f2"


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """Any readable file does for the config; librdkafka reads it only when connecting."""
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def kafka(**fields: Any) -> KafkaConfig:
    return load_settings(None, {"kafka": {"bootstrap_servers": "k:9093", **fields}}).kafka


def test_a_plaintext_cluster_needs_no_security_settings() -> None:
    assert client_security(kafka()) == {}


def test_sasl_plain_over_tls(pem: Path) -> None:
    config = kafka(
        tls={"enabled": True, "ca_file": str(pem)},
        sasl={"mechanism": "PLAIN", "username": "bridge", "password": SECRET},
    )
    assert client_security(config) == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(pem),
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "bridge",
        "sasl.password": SECRET,
    }


def test_scram_password_from_a_file_and_the_system_trust_store(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    config = kafka(
        tls={"enabled": True, "verify_hostname": False},
        sasl={"mechanism": "SCRAM-SHA-512", "username": "bridge", "password_file": secret_file},
    )
    security = client_security(config)
    assert security["sasl.password"] == SECRET  # the file's trailing newline is not in it
    assert security["ssl.ca.location"] == "probe"
    assert security["ssl.endpoint.identification.algorithm"] == "none"


def test_scram_without_tls_is_sasl_plaintext(tmp_path: Path) -> None:
    config = kafka(sasl={"mechanism": "SCRAM-SHA-512", "username": "u", "password": SECRET})
    assert client_security(config)["security.protocol"] == "SASL_PLAINTEXT"


def test_client_certificate_with_its_key_password_from_a_file(pem: Path, tmp_path: Path) -> None:
    password_file = tmp_path / "key-password"
    password_file.write_text(SECRET)
    config = kafka(
        tls={
            "enabled": True,
            "cert_file": pem,
            "key_file": pem,
            "key_password_file": password_file,
        }
    )
    security = client_security(config)
    assert security["security.protocol"] == "SSL"
    assert (security["ssl.certificate.location"], security["ssl.key.location"]) == (
        str(pem),
        str(pem),
    )
    assert security["ssl.key.password"] == SECRET


def test_every_bridge_client_gets_the_security_settings(tmp_path: Path) -> None:
    _, ca = make_ca(tmp_path, "test-ca")
    config = kafka(
        tls={"enabled": True, "ca_file": ca},
        sasl={"mechanism": "PLAIN", "username": "bridge", "password": SECRET},
    )
    produced = producer_config(config, 1_000_000)
    assert produced["security.protocol"] == "SASL_SSL"
    assert produced["sasl.password"] == SECRET
    admin_client(config)  # librdkafka accepts them (it loads the CA at creation)
    KafkaSink(config, b"node", 1_000_000).close()


def test_a_ca_file_librdkafka_cannot_load_is_one_clear_error(pem: Path) -> None:
    config = kafka(tls={"enabled": True, "ca_file": pem})
    with pytest.raises(KafkaSetupError, match=r"settings were refused: .*ssl\.ca\.location failed"):
        KafkaSink(config, b"node", 1_000_000)
    with pytest.raises(KafkaSetupError, match=r"ssl\.ca\.location failed"):
        admin_client(config)


def test_the_password_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__SASL__MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__SASL__USERNAME", "bridge")
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__SASL__PASSWORD", SECRET)
    settings = load_settings(None, {"kafka": {"bootstrap_servers": "k:9093"}})
    assert client_security(settings.kafka)["sasl.password"] == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    assert SECRET not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"sasl": {"mechanism": "PLAIN", "username": "u", "password": SECRET}},
            "PLAIN sends the password in clear text; set tls.enabled = true",
        ),
        ({"tls": {"ca_file": "/etc/hostname"}}, "ca_file set but TLS is off"),
        ({"tls": {"enabled": True, "cert_file": "/etc/hostname"}}, "set cert_file and key_file"),
        ({"tls": {"enabled": True, "key_password": SECRET}}, "a key password without key_file"),
        ({"sasl": {"username": "u"}}, "username set but no mechanism"),
        ({"sasl": {"mechanism": "SCRAM-SHA-512", "password": SECRET}}, "needs a username"),
        (
            {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "u"}},
            "set exactly one of password, password_file",
        ),
        ({"sasl": {"mechanism": "GSSAPI"}}, "kafka.sasl.mechanism"),
        ({"tls": {"enabled": True, "ca_file": "/nonexistent/ca.pem"}}, "cannot read"),
        (
            {
                "tls": {"enabled": True},
                "librdkafka": {"security.protocol": "SSL"},
            },
            "librdkafka.security.protocol conflicts with kafka.tls / kafka.sasl",
        ),
        # A typo must not echo what may be a password.
        ({"sasl": {"mechanism": "PLAIN", "pasword": SECRET}}, "kafka.sasl.pasword"),
    ],
)
def test_bad_security_settings_are_one_clear_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        kafka(**fields)
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_security_keys_may_still_come_from_librdkafka_when_the_typed_ones_are_unused() -> None:
    config = kafka(librdkafka={"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"})
    assert producer_config(config, 1_000_000)["sasl.mechanism"] == "OAUTHBEARER"


def test_an_unreadable_secret_file_names_the_file_not_the_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET)
    config = kafka(
        sasl={"mechanism": "SCRAM-SHA-512", "username": "u", "password_file": secret_file}
    )
    secret_file.unlink()
    with pytest.raises(ConfigError, match=r"kafka\.sasl: cannot read the secret file .*password"):
        client_security(config)


def test_a_refused_login_and_a_refused_certificate_are_told_apart(pem: Path) -> None:
    config = kafka(
        tls={"enabled": True, "ca_file": pem},
        sasl={"mechanism": "SCRAM-SHA-512", "username": "bridge", "password": SECRET},
    )
    transport = KafkaError(KafkaError._TRANSPORT, "Connection refused")
    assert refusal(config, [transport]) is None  # a broker that is down is not a refusal
    login = refusal(config, [transport, KafkaError(KafkaError._AUTHENTICATION, "bad creds")])
    assert login is not None
    assert "refused to authenticate user 'bridge' (SCRAM-SHA-512): bad creds" in login
    tls = refusal(config, [KafkaError(KafkaError._SSL, "certificate verify failed")])
    assert tls is not None
    assert "TLS with Kafka at k:9093 failed: certificate verify failed" in tls
    alert = "Receive failed: error:0A000412:SSL routines::ssl/tls alert bad certificate"
    no_cert = refusal(config, [KafkaError(KafkaError._TRANSPORT, alert)])
    assert no_cert is not None
    assert "refused the TLS connection" in no_cert
