"""A local broker that only talks to authenticated clients: SASL_SSL and mutual TLS.

Why a broker of our own for this: the bridge's TLS and SASL settings must be shown to
work against Kafka itself (librdkafka against the Java broker's handshake), and a
refused password or certificate must be shown to fail clearly; neither can be faked.

Three listeners, each on its own loopback port:

- ``SASL_SSL`` (the client port, ``bootstrap_servers``): TLS with the broker's PEM
  certificate, then SASL PLAIN (users in the listener's JAAS config) or SCRAM-SHA-512
  (credentials written into the metadata log when the storage is formatted);
- ``MTLS`` (``mtls_bootstrap_servers``): TLS that requires a client certificate signed
  by the CA, and no SASL; it doubles as the inter-broker listener, the broker presenting
  its own certificate;
- ``CONTROLLER``: PLAINTEXT, as KRaft's quorum needs nothing more on loopback.

No authorizer runs: every authenticated client may do everything, which is what a test
of authentication needs. The certificates are the caller's (PEM files; the tests make
them with openssl); the passwords are in the run directory's server.properties and in
StorageTool's command line, which is fine for a throwaway broker and for nothing else.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from bridge.localkafka.broker import LocalBroker
from bridge.localkafka.jars import DEFAULT_KAFKA_VERSION, ensure_jars
from bridge.localkafka.jvm import (
    DEFAULT_JVM_OPTIONS,
    broker_command,
    find_java,
    format_storage_once,
)
from bridge.localkafka.properties import write_server_properties
from bridge.localkafka.readiness import metadata_attempts
from bridge.localkafka.rundir import RunDir
from bridge.localkafka.state import BrokerState
from bridge.localservice.ports import HOST
from bridge.localservice.service import LocalService

SCRAM_MECHANISM = "SCRAM-SHA-512"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class BrokerSecurity:
    """The broker's certificate, whom it trusts, and its SASL users.

    ``keystore_file`` is a PEM file holding the broker's encrypted PKCS#8 private key
    (``key_password``: Kafka refuses a PEM keystore file without one) followed by its
    certificate chain (``ssl.keystore.type=PEM``); the certificate must name 127.0.0.1.
    ``ca_file`` is the CA that signs client certificates, and the broker's own.
    ``probe_user`` must be one of ``plain_users``: readiness logs in as it.
    """

    ca_file: Path
    keystore_file: Path
    key_password: str
    plain_users: Mapping[str, str]
    scram_users: Mapping[str, str] = field(default_factory=dict)
    probe_user: str = ""

    def __post_init__(self) -> None:
        for name, password in {**self.plain_users, **self.scram_users}.items():
            for text in (name, password):
                if not text or any(c in text for c in '"\\,=[]\n'):
                    raise ValueError(f"user {name!r}: names and passwords must be plain text")
        if self.probe_user not in self.plain_users:
            raise ValueError(f"probe_user {self.probe_user!r} is not one of plain_users")


def security_properties(
    security: BrokerSecurity, port: int, controller_port: int, mtls_port: int
) -> dict[str, str]:
    """server.properties entries for the three listeners (over the plaintext defaults)."""
    listeners = (
        f"SASL_SSL://{HOST}:{port},CONTROLLER://{HOST}:{controller_port},MTLS://{HOST}:{mtls_port}"
    )
    plain_users = " ".join(
        f'user_{name}="{password}"' for name, password in security.plain_users.items()
    )
    return {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL",
        "inter.broker.listener.name": "MTLS",
        "sasl.enabled.mechanisms": f"PLAIN,{SCRAM_MECHANISM}",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": f"{_PLAIN_MODULE} required {plain_users};",
        f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
            f"{_SCRAM_MODULE} required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(security.keystore_file),
        "ssl.key.password": security.key_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.ca_file),
        "listener.name.mtls.ssl.client.auth": "required",
    }


def scram_format_args(security: BrokerSecurity) -> list[str]:
    """StorageTool ``format`` arguments that create the SCRAM users."""
    args: list[str] = []
    for name, password in security.scram_users.items():
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
    return args


def probe_config(security: BrokerSecurity) -> dict[str, str]:
    """librdkafka settings of the readiness probe: PLAIN over TLS as ``probe_user``."""
    return {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(security.ca_file),
        "sasl.mechanism": "PLAIN",
        "sasl.username": security.probe_user,
        "sasl.password": security.plain_users[security.probe_user],
    }


@dataclass(frozen=True, kw_only=True)
class SecureBrokerState(BrokerState):
    """broker.json of a secured broker: the mutual-TLS port besides the others."""

    port_fields = ("port", "controller_port", "mtls_port")  # type: ignore[assignment]  # one more

    mtls_port: int


class SecureBroker(LocalBroker):
    """A ``LocalBroker`` whose clients must authenticate (see the module docstring)."""

    label = "secured Kafka broker"
    port_roles = ("client", "controller", "mtls")  # type: ignore[assignment]  # one more
    state_type = SecureBrokerState  # type: ignore[assignment]  # a BrokerState, with a port

    def __init__(
        self,
        run_dir: Path,
        security: BrokerSecurity,
        port: int = 0,
        controller_port: int = 0,
        mtls_port: int = 0,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
    ) -> None:
        """Describe a secured broker; nothing happens until ``start()``; 0 ports are
        picked at start."""
        LocalService.__init__(
            self, run_dir, (port, controller_port, mtls_port), kafka_version, jvm_options
        )
        self._dir = RunDir(self.run_dir)
        self._extra_properties = {}
        self.security = security

    @classmethod
    def _from_state(cls, run_dir: Path, state: BrokerState | None) -> Self:
        raise NotImplementedError(
            "a secured broker is only run by the process that knows its credentials"
        )

    @property
    def mtls_bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the listener that requires client certificates."""
        port = self._ports[2]
        if port is None:
            raise self.error("The mtls port is chosen at start(); start the broker first.")
        return f"{HOST}:{port}"

    def _provision(self, ports: tuple[int, ...]) -> list[str]:
        port, controller_port, mtls_port = ports
        libs = ensure_jars(self.version)
        java = find_java()
        self._dir.logs.mkdir(parents=True, exist_ok=True)
        properties = security_properties(self.security, port, controller_port, mtls_port)
        write_server_properties(self.config_path, port, controller_port, self._dir.data, properties)
        format_storage_once(java, libs, self._dir, scram_format_args(self.security))
        return broker_command(java, libs, self._jvm_options, self._dir)

    def _new_state(self, pid: int, ports: tuple[int, ...]) -> SecureBrokerState:
        return SecureBrokerState(
            pid=pid,
            port=ports[0],
            controller_port=ports[1],
            mtls_port=ports[2],
            bootstrap_servers=self.address,
            cmdline_marker=self.marker,
            kafka_version=self.version,
        )

    def _readiness_attempts(self) -> Generator[str | None, None, None]:
        return metadata_attempts(self.port, probe_config(self.security))


__all__ = ["BrokerSecurity", "SecureBroker", "security_properties"]
