"""Schema Registry mode: register the committed schemas and frame values with their ids.

Without a registry every value is Avro single-object encoded (``C3 01`` + fingerprint),
which needs nothing but the ``avro/`` files. With ``registry.url`` set, the bridge
instead writes the Confluent wire format (``00`` + the 4-byte big-endian schema id +
the same Avro body) so that stock consumers (Confluent's ``AvroDeserializer``, Kafka
Connect, ksqlDB, Spark's ``from_avro`` with a registry) decode the topics unchanged.

Only the framing differs: the native encoder writes whatever framing bytes it is given
per stream (:func:`bridge.codec.native.configure`), so registry mode costs nothing on the
hot path. At start the bridge:

1. sets each subject's compatibility from the schema's ``tracebridge.stability`` tag
   (:data:`bridge.events.compat.LEVEL_BY_STABILITY`: stable FULL_TRANSITIVE,
   experimental BACKWARD, proposed/internal NONE), *before* registering, so the
   registry checks the new version under the rule the stability policy promises;
2. registers every schema under ``<topic>-<record full name>``: the topic-record-name
   strategy, because several record types share one topic (``tracebridge.net`` carries
   seven) and the default topic-name strategy (``<topic>-value``) allows one;
3. hands back ``framing`` per record: the bytes the encoder puts before each body.

A registry that refuses a schema stops the bridge with the subject and the registry's
reason (:class:`SchemaRejectedError`); one that does not answer, with its URL
(:class:`RegistryUnreachableError`). Decoding goes the other way through
:class:`RegistryResolver`, which :meth:`SchemaStore.decode
<bridge.codec.single_object.SchemaStore.decode>` uses for ``00``-framed values.

The client is confluent-kafka's ``SchemaRegistryClient`` (extra ``registry``), imported
when a registry is used, so the core install needs none of its dependencies.
"""

from __future__ import annotations

import json
import re
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.codec.single_object import KnownSchema, SchemaStore, SingleObjectError
from bridge.errors import SinkError
from bridge.events.compat import Level, level_for

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

# Confluent wire format: magic byte 0, then the schema id as a 4-byte big-endian unsigned
# int (confluent_kafka.schema_registry SchemaId.id_to_bytes; kafka-local.md 3.3).
CONFLUENT_MAGIC = b"\x00"
_SCHEMA_ID = struct.Struct(">I")
CONFLUENT_HEADER_SIZE = len(CONFLUENT_MAGIC) + _SCHEMA_ID.size

SUBJECT_STRATEGY: Literal["topic_record"] = "topic_record"

# The bridge's own records (bridge/app.py writes them to <prefix>.bridge and .deadletter).
HEARTBEAT_RECORD = "tracebridge.bridge.Heartbeat"
DEAD_LETTER_RECORD = "tracebridge.bridge.DeadLetter"

# How a registry request ends when the registry hangs: a registration is one small POST,
# so 10 s only runs out on a registry that is not answering.
DEFAULT_TIMEOUT_S = 10.0

# Apicurio prefixes its reasons with the Java exception's class name, e.g.
# "io.apicurio.registry.rules.violation.RuleViolationException: Incompatible artifact: ...".
_JAVA_EXCEPTION_PREFIX = re.compile(r"^(?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ")


class RegistryConfig(BaseModel):
    """Where schemas are registered, when values use the Confluent wire format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        description="Schema registry URL (Confluent API), e.g. "
        "http://registry:8080/apis/ccompat/v7 for Apicurio. Set: values are written in the "
        "Confluent wire format and schemas registered at start. Unset: Avro single-object "
        "encoding, no registry needed.",
    )
    subject_name_strategy: Literal["topic_record"] = Field(
        SUBJECT_STRATEGY,
        description="Subjects are <topic>-<record full name> (TopicRecordNameStrategy), "
        "because several record types share each topic.",
    )
    timeout_s: float = Field(
        DEFAULT_TIMEOUT_S, gt=0, le=300, description="Timeout of each registry request."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://", "mock://")):
            raise ValueError(f"{url!r} is not an http(s):// URL (mock:// for tests)")
        return url


class RegistryError(SinkError):
    """The schema registry cannot be used; the message names the registry and the cause."""


class RegistryUnreachableError(RegistryError):
    """No answer from the registry (connection refused, DNS, timeout)."""


class SchemaRejectedError(RegistryError):
    """The registry refused a schema or a setting; ``subject`` and ``reason`` say which and why."""

    def __init__(self, message: str, subject: str, reason: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.reason = reason


class SchemaIdUnresolvedError(SingleObjectError):
    """A Confluent-framed value whose schema id the registry cannot give (decode side)."""


def subject_name(topic: str, full_name: str) -> str:
    """TopicRecordNameStrategy: ``<topic>-<record full name>``."""
    return f"{topic}-{full_name}"


def confluent_framing(schema_id: int) -> bytes:
    """The 5 bytes before every Confluent-framed Avro body."""
    return CONFLUENT_MAGIC + _SCHEMA_ID.pack(schema_id)


def parse_confluent_framing(value: bytes) -> int:
    """The schema id of a Confluent-framed value; SingleObjectError if it is not one."""
    if len(value) < CONFLUENT_HEADER_SIZE or value[:1] != CONFLUENT_MAGIC:
        raise SingleObjectError("not the Confluent wire format (no 00 magic byte + 4-byte id)")
    (schema_id,) = _SCHEMA_ID.unpack_from(value, 1)
    return int(schema_id)


@dataclass(frozen=True)
class Registration:
    """One schema as registered: where, under which rule, and the framing it yields."""

    topic: str
    subject: str
    full_name: str
    schema_id: int
    compatibility: Level

    @property
    def framing(self) -> bytes:
        """What the encoder writes before the Avro body of this record."""
        return confluent_framing(self.schema_id)


def bridge_schema_topics(store: SchemaStore, prefix: str) -> list[tuple[str, KnownSchema]]:
    """Every schema the bridge writes, with its topic under ``prefix``.

    Event records go to ``<prefix>.<subsystem>`` (their namespace's last part is the
    subsystem); the bridge's own records to ``<prefix>.bridge`` and
    ``<prefix>.deadletter``, as in :mod:`bridge.sinks.kafka.topics`.
    """
    from bridge.events.avro_schema import event_schema, full_name
    from bridge.events.catalog import ALL_EVENTS
    from bridge.sinks.kafka.topics import bridge_topic, dead_letter_topic, event_topic

    pairs = [
        (event_topic(prefix, spec.subsystem), store.by_name(full_name(event_schema(spec))))
        for spec in ALL_EVENTS
    ]
    pairs.append((bridge_topic(prefix), store.by_name(HEARTBEAT_RECORD)))
    pairs.append((dead_letter_topic(prefix), store.by_name(DEAD_LETTER_RECORD)))
    return pairs


def open_client(config: RegistryConfig) -> SchemaRegistryClient:
    """A confluent-kafka ``SchemaRegistryClient`` for ``config.url`` (``mock://``: in-process)."""
    if config.url is None:
        raise RegistryError("registry.url is not set")
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as error:
        raise RegistryError(
            "registry mode needs the schema-registry client's dependencies: "
            f"pip install 'tracebridge[registry]' ({error})"
        ) from None
    conf: dict[str, Any] = {"url": config.url, "timeout": config.timeout_s}
    return SchemaRegistryClient.new_client(conf)


def _reason(error: Exception) -> str:
    message = getattr(error, "error_message", None) or str(error)
    return _JAVA_EXCEPTION_PREFIX.sub("", str(message)).strip()


class SchemaRegistrar:
    """Registers schemas and sets their subjects' compatibility, with clear errors."""

    def __init__(self, client: SchemaRegistryClient, url: str) -> None:
        self.client = client
        self.url = url

    def register(self, topic: str, known: KnownSchema) -> Registration:
        """Set the subject's level from the stability tag, then register the schema."""
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.common.schema_registry_client import (
            ConfigCompatibilityLevel,
            ServerConfig,
        )

        subject = subject_name(topic, known.full_name)
        level = level_for(known.stability)
        config = ServerConfig(compatibility=ConfigCompatibilityLevel(level.value))
        self._call(
            f"setting compatibility {level} on subject {subject}",
            subject,
            lambda: self.client.set_config(subject, config),
        )
        schema = Schema(json.dumps(known.definition), "AVRO")
        schema_id = self._call(
            f"registering {known.full_name} under subject {subject} ({level})",
            subject,
            lambda: self.client.register_schema(subject, schema),
        )
        return Registration(topic, subject, known.full_name, int(schema_id), level)

    def register_all(self, pairs: Iterable[tuple[str, KnownSchema]]) -> dict[str, Registration]:
        """Register every (topic, schema); keyed by record full name."""
        return {known.full_name: self.register(topic, known) for topic, known in pairs}

    def _call(self, what: str, subject: str, action: Any) -> Any:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return action()
        except SchemaRegistryError as error:
            reason = _reason(error)
            status = error.http_status_code
            if status == 409:
                hint = (
                    " The new schema breaks the subject's compatibility rule; "
                    "`tracebridge schemas compat` shows which change."
                )
            else:
                hint = ""
            raise SchemaRejectedError(
                f"The schema registry at {self.url} refused {what}: {reason} "
                f"(HTTP {status}, registry error {error.error_code}).{hint}",
                subject,
                reason,
            ) from None
        except Exception as error:
            if _is_transport_error(error):
                raise RegistryUnreachableError(
                    f"The schema registry at {self.url} did not answer while {what}: "
                    f"{type(error).__name__}: {error}. Is it running, and is registry.url "
                    "its Confluent-compatible API (for Apicurio, .../apis/ccompat/v7)?"
                ) from None
            raise


def _is_transport_error(error: Exception) -> bool:
    """httpx2's TransportError (refused, DNS, timeout), without importing it up front."""
    try:
        import httpx2
    except ImportError:
        return False
    return isinstance(error, httpx2.TransportError)


def register_schemas(
    config: RegistryConfig, pairs: Iterable[tuple[str, KnownSchema]]
) -> dict[str, Registration]:
    """Register every (topic, schema) at ``config.url``; keyed by record full name.

    The bridge's start calls this once; the framing of each registration goes into the
    schema store (``SchemaStore.with_framing``), which every encoder path reads.
    """
    client = open_client(config)
    assert config.url is not None  # open_client refused None
    try:
        return SchemaRegistrar(client, config.url).register_all(pairs)
    finally:
        client.close()


def framing_by_name(registrations: Mapping[str, Registration]) -> dict[str, bytes]:
    """Record full name -> framing bytes, what ``SchemaStore.with_framing`` takes."""
    return {name: registration.framing for name, registration in registrations.items()}


class RegistryResolver:
    """Fetches the writer schema of a Confluent schema id, once per id (decode side).

    :meth:`SchemaStore.decode <bridge.codec.single_object.SchemaStore.decode>` calls
    :meth:`fetch_schema`; the store then matches the text to a committed schema by
    fingerprint, or decodes with the registry's schema when none matches.
    """

    def __init__(self, client: SchemaRegistryClient, url: str) -> None:
        self.client = client
        self.url = url
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: RegistryConfig) -> RegistryResolver:
        """A resolver with its own client for ``config.url``."""
        assert config.url is not None, "registry.url is not set"
        return cls(open_client(config), config.url)

    def fetch_schema(self, schema_id: int) -> str:
        """The Avro schema text the registry holds for ``schema_id``."""
        with self._lock:
            cached = self._texts.get(schema_id)
        if cached is not None:
            return cached
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self.client.get_schema(schema_id)
        except SchemaRegistryError as error:
            raise SchemaIdUnresolvedError(
                f"schema id {schema_id} is not known to the registry at {self.url}: "
                f"{_reason(error)} (HTTP {error.http_status_code})"
            ) from None
        except Exception as error:
            if _is_transport_error(error):
                raise SchemaIdUnresolvedError(
                    f"schema id {schema_id}: the registry at {self.url} did not answer "
                    f"({type(error).__name__}: {error})"
                ) from None
            raise
        if schema.schema_type not in (None, "AVRO") or not schema.schema_str:
            raise SchemaIdUnresolvedError(
                f"schema id {schema_id} at {self.url} is a {schema.schema_type} schema, not Avro"
            )
        with self._lock:
            self._texts[schema_id] = schema.schema_str
        return schema.schema_str

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()
