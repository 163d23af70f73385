"""The security part of every Kafka client's settings: TLS and SASL from ``kafka.tls`` and
``kafka.sasl``, and what a refused handshake means.

One function builds it, so the producer, the admin client and every consumer (tail,
replay, audit, the demo's lag view) reach a secured cluster the same way; a command that
forgot it would fail only on the clusters that matter. Secrets leave their ``SecretStr``
(or their file) only here, into the dict handed to librdkafka, which never logs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException
from pydantic import SecretStr

from bridge.config import KafkaConfig
from bridge.errors import ConfigError, KafkaSetupError

ClientT = TypeVar("ClientT")

# librdkafka error codes that no retry will cure: the broker refused who we are, or we
# refused who it is. Seen at startup, they end it with one clear error.
AUTHENTICATION_CODES = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
)
TLS_CODES = frozenset({KafkaError._SSL})
# A broker that refuses our certificate (or its absence) sends a TLS alert after the
# handshake (TLS 1.3); librdkafka reports it as a transport error carrying this text.
TLS_ALERT = "ssl/tls alert"


def client_security(config: KafkaConfig) -> dict[str, str]:
    """librdkafka's security settings for ``config``; empty for a plaintext cluster."""
    tls, sasl = config.tls, config.sasl
    if not tls.enabled and sasl.mechanism is None:
        return {}
    protocol = ("SASL_" if sasl.mechanism else "") + ("SSL" if tls.enabled else "PLAINTEXT")
    conf = {"security.protocol": protocol}
    if tls.enabled:
        # "probe": librdkafka looks for the system's CA bundle itself; the wheel's bundled
        # OpenSSL does not know Debian's path.
        conf["ssl.ca.location"] = str(tls.ca_file) if tls.ca_file else "probe"
        conf["ssl.endpoint.identification.algorithm"] = "https" if tls.verify_hostname else "none"
        if tls.cert_file is not None and tls.key_file is not None:
            conf["ssl.certificate.location"] = str(tls.cert_file)
            conf["ssl.key.location"] = str(tls.key_file)
        key_password = _secret(tls.key_password, tls.key_password_file, "kafka.tls")
        if key_password is not None:
            conf["ssl.key.password"] = key_password
    if sasl.mechanism is not None:
        password = _secret(sasl.password, sasl.password_file, "kafka.sasl")
        # KafkaSaslConfig requires both with a mechanism.
        assert sasl.username is not None
        assert password is not None
        conf["sasl.mechanism"] = sasl.mechanism
        conf["sasl.username"] = sasl.username
        conf["sasl.password"] = password
    return conf


def _secret(value: SecretStr | None, file: Path | None, section: str) -> str | None:
    """The secret itself, from the config/environment or its file (read now, so a rotated
    file is picked up by the next client)."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{section}: cannot read the secret file {file}: {reason}") from None


def new_client(create: Callable[[], ClientT]) -> ClientT:
    """``create()``, with librdkafka's refusal of its settings as one clear error.

    librdkafka loads the CA, certificate and key when the client is created, so an
    unreadable or wrong PEM file (or a wrong key password) fails here, not at connect.
    """
    try:
        return create()
    except KafkaException as error:
        raise KafkaSetupError(
            f"The Kafka client settings were refused: {error.args[0].str()} "
            "(check kafka.tls and kafka.librdkafka)"
        ) from None


def refusal(config: KafkaConfig, errors: Iterable[KafkaError]) -> str | None:
    """What went wrong, if one of ``errors`` is a refused login or TLS handshake.

    librdkafka retries those forever and a metadata request merely times out, so without
    this the operator would read "is the broker running?" about a broker that answered.
    """
    for error in errors:
        code = error.code()
        servers = config.bootstrap_servers
        if code in AUTHENTICATION_CODES:
            sasl = config.sasl
            who = f"user {sasl.username!r} ({sasl.mechanism})" if sasl.mechanism else "the client"
            return (
                f"Kafka at {servers} refused to authenticate {who}: {error.str()}. "
                "Check kafka.sasl.username and the password (kafka.sasl.password or "
                "password_file), and kafka.tls.cert_file for certificate logins."
            )
        if code in TLS_CODES:
            return (
                f"TLS with Kafka at {servers} failed: {error.str()}. Check that "
                "kafka.tls.ca_file holds the CA that signed the brokers' certificates, "
                "that they name the host connected to (kafka.tls.verify_hostname), and "
                "that the brokers accept the client certificate, if they ask for one."
            )
        if code == KafkaError._TRANSPORT and TLS_ALERT in error.str().lower():
            return (
                f"Kafka at {servers} refused the TLS connection: {error.str()}. The brokers "
                "ask for a client certificate signed by a CA they trust: check "
                "kafka.tls.cert_file and kafka.tls.key_file."
            )
    return None
