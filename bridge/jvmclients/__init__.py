"""Readers of the topics that are not this project: Kafka's JVM consumer and Kafka Connect.

tracebridge's topics are a contract for consumers that know nothing of this project but
the Avro schemas (single-object encoding) or the registry (Confluent wire format). The
proof is a reader built only from Apache Kafka, Apache Avro and Apicurio's serdes, from
Maven Central (``deploy/jvm/``): ``TopicDump``, a plain ``KafkaConsumer``, and Kafka
Connect standalone with Apicurio's AvroConverter and the FileStream sink. This package
only builds them into the cache (``jars``); tests/jvm/ runs them against the bridge.
"""

from bridge.localkafka import LocalKafkaError


class JvmClientsError(LocalKafkaError):
    """Raised when the JVM readers cannot be built; one line from the CLI, like the
    local services' errors."""
