"""Configuration: one typed model per component, loaded from a TOML file, then the
environment (``TRACEBRIDGE_`` prefix, ``__`` between nested names), then CLI flags.

Every model rejects unknown keys (a typo must not silently fall back to a default) and
is frozen. Invalid values raise :class:`~bridge.errors.ConfigError` with the dotted name
of the field, e.g. ``usdt.payload_capture_bytes: ...``.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bridge.codec.registry import RegistryConfig
from bridge.errors import ConfigError
from bridge.events.catalog import SUBSYSTEMS
from bridge.privacy.settings import PrivacyConfig

# Largest payload capture: the BPF scratch record must stay within one array-map value
# (KMALLOC_MAX_SIZE, 4 MiB), and the verifier needs a power-of-two mask above the cap, so
# 2 MiB - 1. Every P2P message but large blocks fits; longer ones are cut and flagged.
MAX_PAYLOAD_CAPTURE = 2 * 1024 * 1024 - 1

# Ring sizes in KiB. A net record is 168 B + the captured payload; at 200k msgs/s with a
# 5 ms poll interval about 1,000 records (~700 KiB at 512 B payloads) arrive between
# drains, so 16 MiB absorbs ~100 ms of consumer stall. utxocache bursts thousands of
# events per block connect (88 B each); 8 MiB holds ~95k.
DEFAULT_RING_KIB: dict[str, int] = {
    "net": 16384,
    "validation": 256,
    "utxocache": 8192,
    "mempool": 4096,
    "coin_selection": 256,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsdtSourceConfig(_Model):
    """Where the node is and what to read from it via USDT/eBPF."""

    pid: int | None = Field(None, gt=0, description="PID of the node to trace.")
    pidfile: Path | None = Field(
        None, description="File holding the node's PID (bitcoind -pid); re-read after restarts."
    )
    binary: Path | None = Field(
        None,
        description="Path of the node binary; the running process executing it is traced, "
        "and found again after it restarts.",
    )
    tracepoints: tuple[str, ...] = Field(
        ("*",),
        min_length=1,
        description="Tracepoints to attach: globs over 'subsystem:event', or subsystem names "
        "(e.g. 'mempool', 'net:*_message').",
    )
    payload_capture_bytes: int = Field(
        512,
        ge=0,
        le=MAX_PAYLOAD_CAPTURE,
        description="P2P payload bytes captured per message; msg_size keeps the full size "
        "and msg_truncated says when bytes were cut.",
    )
    ring_buffer_kib: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_RING_KIB),
        description="Ring buffer size per subsystem in KiB (a power of two, at least 4).",
    )
    poll_interval_ms: float = Field(
        5.0,
        gt=0,
        le=1000,
        description="How often the rings are drained. Bounds latency; larger batches cost "
        "less CPU per event.",
    )
    wakeup: Literal["timer", "adaptive"] = Field(
        "timer",
        description="'timer': probes never wake the bridge (cheapest for the node; latency "
        "up to poll_interval_ms). 'adaptive': the kernel wakes the bridge when it is idle "
        "(lower latency at low rates, a wakeup per event at moderate rates).",
    )
    max_batch: int = Field(16384, ge=1, description="Most records drained from one ring per poll.")
    reattach: bool = Field(
        True, description="Wait for the node to come back after it exits, then re-attach."
    )

    @field_validator("ring_buffer_kib")
    @classmethod
    def _rings(cls, value: dict[str, int]) -> dict[str, int]:
        merged = dict(DEFAULT_RING_KIB)
        for subsystem, kib in value.items():
            if subsystem not in SUBSYSTEMS:
                raise ValueError(
                    f"unknown subsystem {subsystem!r} (known: {', '.join(SUBSYSTEMS)})"
                )
            if kib < 4 or kib & (kib - 1):
                raise ValueError(f"{subsystem}: {kib} KiB is not a power of two >= 4")
            merged[subsystem] = kib
        return merged

    @model_validator(mode="after")
    def _one_target(self) -> UsdtSourceConfig:
        given = [name for name in ("pid", "pidfile", "binary") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of pid, pidfile, binary (got {', '.join(given)})")
        return self


class IpcSourceConfig(_Model):
    """Where the node's IPC socket is and what to subscribe to over it."""

    socket: Path | None = Field(
        None,
        description="The node's Unix socket (bitcoin-node -ipcbind=unix). Default: "
        "<datadir>/<network dir>/node.sock, as bitcoin-node creates it.",
    )
    datadir: Path = Field(
        Path("~/.bitcoin"),
        description="The node's data directory (for the default socket path; ~ is expanded).",
    )
    network: Literal["main", "test", "testnet4", "signet", "regtest"] = Field(
        "main", description="The node's chain (for the default socket path)."
    )
    version: Literal["auto", "v30", "v31", "master", "proposed"] = Field(
        "auto",
        description="Which schemas/ set the node speaks; 'auto' asks the node (and says "
        "which it found). 'proposed' = master plus the tracing/notification proposals.",
    )
    subscribe: tuple[Literal["net", "utxo", "chain", "node", "tip"], ...] = Field(
        ("net", "utxo", "chain", "node", "tip"),
        description="Streams to subscribe to; the ones the node does not offer are "
        "reported once and skipped. 'tip' uses the merged Mining interface.",
    )
    poll_interval_s: float = Field(
        10.0,
        ge=0,
        description="How often node state (peers, mempool, chain, network) is polled into "
        "snapshot records; 0 disables polling.",
    )
    max_payload_bytes: int = Field(
        512,
        ge=0,
        le=MAX_PAYLOAD_CAPTURE,
        description="NetMessageTraceOptions.maxPayloadBytes: P2P payload bytes the node sends.",
    )
    max_queue_events: int = Field(
        65536, ge=1, description="NetMessageTraceOptions.maxQueueEvents (the node's default)."
    )
    max_batch_events: int = Field(
        1024, ge=1, description="NetMessageTraceOptions.maxBatchEvents (the node's default)."
    )
    max_batch_wait_us: int = Field(
        1000, ge=0, description="NetMessageTraceOptions.maxBatchWaitUs (the node's default)."
    )
    max_pending_records: int = Field(
        1_000_000,
        ge=1000,
        description="Records received but not yet handed to Kafka. Past it, callbacks wait: "
        "the node then slows down, or drops and counts (NetMessageTrace).",
    )
    reconnect_max_backoff_s: float = Field(
        10.0, gt=0, description="Longest wait between reconnection attempts."
    )
    reattach: bool = Field(True, description="Reconnect after the socket goes away.")

    def socket_path(self) -> Path:
        """The configured socket, or bitcoin-node's default for the datadir and network."""
        if self.socket is not None:
            return self.socket.expanduser()
        datadir = self.datadir.expanduser()
        subdir = {"main": "", "test": "testnet3"}.get(self.network, self.network)
        return datadir / subdir / "node.sock" if subdir else datadir / "node.sock"


def _readable_file(path: Path) -> Path:
    """Certificates, keys and secret files are checked when the config is loaded, so a
    wrong path is a config error at startup, not a TLS failure seconds later."""
    path = path.expanduser()
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]


def _set_fields(model: BaseModel, names: tuple[str, ...]) -> str:
    """Which of ``names`` (and their ``<name>_file`` twins) hold a value, comma-separated:
    settings that do nothing unless their section is switched on."""
    fields = type(model).model_fields
    candidates = [n for name in names for n in (name, f"{name}_file") if n in fields]
    return ", ".join(n for n in candidates if getattr(model, n) is not None)


class KafkaTlsConfig(_Model):
    """TLS to the brokers: whom to trust, and the client certificate if they ask for one."""

    enabled: bool = Field(
        False,
        description="Connect over TLS (security protocol SSL, or SASL_SSL with kafka.sasl).",
    )
    ca_file: ReadableFile | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates. Unset: the "
        "system's trust store.",
    )
    cert_file: ReadableFile | None = Field(
        None,
        description="PEM client certificate (chain), for brokers that authenticate clients "
        "by certificate; with key_file.",
    )
    key_file: ReadableFile | None = Field(None, description="PEM private key of cert_file.")
    key_password: SecretStr | None = Field(
        None,
        description="Passphrase of an encrypted key_file; better from "
        "TRACEBRIDGE_KAFKA__TLS__KEY_PASSWORD or key_password_file.",
    )
    key_password_file: ReadableFile | None = Field(
        None, description="File holding key_password (trailing newline ignored)."
    )
    verify_hostname: bool = Field(
        True,
        description="Check that the broker's certificate names the host connected to (off "
        "only for brokers whose certificates lack their addresses).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaTlsConfig:
        given = _set_fields(self, ("ca_file", "cert_file", "key_file", "key_password"))
        if not self.enabled and given:
            raise ValueError(f"{given} set but TLS is off; set enabled = true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set cert_file and key_file together")
        if self.key_password is not None and self.key_password_file is not None:
            raise ValueError("set only one of key_password, key_password_file")
        has_password = self.key_password is not None or self.key_password_file is not None
        if has_password and self.key_file is None:
            raise ValueError("a key password without key_file")
        return self


class KafkaSaslConfig(_Model):
    """SASL authentication to the brokers (usually with kafka.tls)."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-512"] | None = Field(
        None,
        description="SASL mechanism; unset: no SASL. PLAIN needs kafka.tls.enabled, as it "
        "sends the password itself.",
    )
    username: str | None = Field(None, min_length=1, description="SASL user name.")
    password: SecretStr | None = Field(
        None,
        description="SASL password; better from TRACEBRIDGE_KAFKA__SASL__PASSWORD or "
        "password_file than in a config file.",
    )
    password_file: ReadableFile | None = Field(
        None, description="File holding the SASL password (trailing newline ignored)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSaslConfig:
        if self.mechanism is None:
            given = _set_fields(self, ("username", "password"))
            if given:
                raise ValueError(f"{given} set but no mechanism (PLAIN or SCRAM-SHA-512)")
            return self
        if self.username is None:
            raise ValueError(f"{self.mechanism} needs a username")
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set exactly one of password, password_file")
        return self


# librdkafka keys the typed kafka.tls / kafka.sasl settings write, when they are in use.
SECURITY_KEYS = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    }
)


class KafkaConfig(_Model):
    """Where records go and how the producer behaves."""

    bootstrap_servers: str | None = Field(
        None,
        description="Kafka brokers, host:port[,host:port]. Unset: `demo` starts a local "
        "broker; `run` requires it.",
    )
    topic_prefix: str = Field(
        "tracebridge",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Topics are <prefix>.<subsystem>, <prefix>.bridge, <prefix>.deadletter.",
    )
    create_topics: bool = Field(True, description="Create missing topics at startup.")
    event_headers: bool = Field(
        True,
        description="Put stability, schema_fp, source and node headers on every event "
        "record, so consumers can route without decoding. The four cost about 0.6 us of "
        "bridge CPU per record, 40% of the bridge's cost (README, Performance); the same "
        "facts are in every record anyway (envelope, schema fingerprint or ID). "
        "Heartbeats and dead letters always carry them.",
    )
    startup_timeout_s: float = Field(
        15.0, gt=0, description="How long startup waits for the brokers to answer."
    )
    partitions: int = Field(1, ge=1, description="Partitions of topics the bridge creates.")
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replicas of the topics the bridge creates. Unset: 3 when the cluster "
        "has 3 or more brokers (as it reports them at startup), else one per broker.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics the bridge creates: replicas that "
        "must hold a record before Kafka acknowledges it (acks=all). Unset: a majority of "
        "3 or more replicas (2 of 3), else 1. Existing topics are left as they are.",
    )
    compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = Field(
        "lz4", description="Producer compression; lz4 is the cheapest in CPU."
    )
    linger_ms: float = Field(
        20, ge=0, description="Producer batching delay (librdkafka's default is 5)."
    )
    queue_max_messages: int = Field(
        1_000_000,
        ge=1000,
        description="Producer queue bound (librdkafka's default is 100000). When it is full "
        "the bridge waits up to queue_full_timeout_ms, then drops and counts.",
    )
    queue_full_timeout_ms: float = Field(
        500, ge=0, description="How long a full producer queue may stall draining."
    )
    message_timeout_ms: int = Field(
        120_000,
        ge=1000,
        description="Give up on a record Kafka has not acknowledged after this long (counted "
        "as a producer loss). librdkafka's default is 300000.",
    )
    librdkafka: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka producer settings (e.g. ssl.cipher.suites). Keys the "
        "typed fields set are refused: set them in one place.",
    )
    tls: KafkaTlsConfig = Field(default_factory=lambda: KafkaTlsConfig())
    sasl: KafkaSaslConfig = Field(default_factory=lambda: KafkaSaslConfig())

    @model_validator(mode="after")
    def _secure_enough(self) -> KafkaConfig:
        if self.sasl.mechanism == "PLAIN" and not self.tls.enabled:
            raise ValueError(
                "sasl.mechanism PLAIN sends the password in clear text; set tls.enabled = true"
            )
        if self.tls.enabled or self.sasl.mechanism is not None:
            for key in self.librdkafka:
                if key in SECURITY_KEYS:
                    raise ValueError(
                        f"librdkafka.{key} conflicts with kafka.tls / kafka.sasl; set it in "
                        "one place"
                    )
        return self

    @model_validator(mode="after")
    def _replicas_enough(self) -> KafkaConfig:
        rf, min_isr = self.replication_factor, self.min_insync_replicas
        if rf is not None and min_isr is not None and min_isr > rf:
            raise ValueError(
                f"min_insync_replicas ({min_isr}) exceeds replication_factor ({rf}): "
                "Kafka would refuse every acks=all write"
            )
        return self

    @model_validator(mode="after")
    def _no_conflicts(self) -> KafkaConfig:
        owned = {
            "bootstrap.servers": "bootstrap_servers",
            "compression.type": "compression",
            "linger.ms": "linger_ms",
            "queue.buffering.max.messages": "queue_max_messages",
            "message.timeout.ms": "message_timeout_ms",
            "enable.idempotence": "(always on)",
            "acks": "(always all)",
        }
        for key in self.librdkafka:
            if key in owned:
                raise ValueError(
                    f"librdkafka.{key} conflicts with kafka.{owned[key]}; set it in one place"
                )
        return self


class MetricsConfig(_Model):
    """The Prometheus endpoint (off unless a port is given)."""

    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics on this port (/metrics); unset: no endpoint. "
        "0 picks a free port (logged).",
    )
    address: str = Field(
        "0.0.0.0",  # noqa: S104  # like node_exporter: Prometheus scrapes from elsewhere
        min_length=1,
        description="Address the metrics endpoint listens on (0.0.0.0: every interface, "
        "as node_exporter does; 127.0.0.1 keeps it local).",
    )


class BridgeSettings(BaseSettings):
    """Everything `tracebridge run` needs."""

    model_config = SettingsConfigDict(
        env_prefix="TRACEBRIDGE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    node_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="Name of the node in every record and the Kafka key (default: host name).",
    )
    source: Literal["usdt", "ipc"] = Field(
        "usdt", description="How events are captured: eBPF on USDT probes, or Cap'n Proto IPC."
    )
    usdt: UsdtSourceConfig = Field(default_factory=lambda: UsdtSourceConfig())
    ipc: IpcSourceConfig = Field(default_factory=lambda: IpcSourceConfig())
    kafka: KafkaConfig = Field(default_factory=lambda: KafkaConfig())
    registry: RegistryConfig = Field(
        default_factory=lambda: RegistryConfig(),
        description="Schema registry mode: Confluent wire format and registered schemas; "
        "without a url, Avro single-object encoding.",
    )
    privacy: PrivacyConfig = Field(default_factory=lambda: PrivacyConfig())
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often the ledger is written to <prefix>.bridge."
    )
    metrics: MetricsConfig = Field(default_factory=lambda: MetricsConfig())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: flags (init kwargs), environment, then the TOML file
        # chosen by load_settings(). No dotenv or secrets directories.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _CONFIG_FILE.path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE.path))
        return tuple(sources)


class _ConfigFile:
    """The file load_settings() is reading; pydantic-settings asks for sources on a class."""

    path: Path | None = None


_CONFIG_FILE = _ConfigFile()


def _explain(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        got = problem.get("input")
        # A mistyped key under kafka.sasl / kafka.tls may well hold a secret: never echo it.
        secret = any(part in ("sasl", "tls", "librdkafka") for part in problem["loc"])
        shown = "" if isinstance(got, dict) or secret else f" (got {got!r})"
        lines.append(f"{where}: {problem['msg']}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> BridgeSettings:
    """File, then environment, then ``overrides`` (CLI flags); ConfigError if invalid."""
    if config_file is not None:
        try:
            tomllib.loads(config_file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {config_file} does not exist") from None
        except OSError as error:  # a directory, no permission, ...
            raise ConfigError(
                f"config file {config_file} cannot be read: {error.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {config_file} is not UTF-8 (TOML must be)") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {config_file} is not valid TOML: {error}") from None
    _CONFIG_FILE.path = config_file
    try:
        return BridgeSettings(**(overrides or {}))
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None
    finally:
        _CONFIG_FILE.path = None
