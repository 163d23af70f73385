"""A throwaway Kafka broker (or cluster of them) for tests and local runs, without Docker.

The broker is Apache Kafka's own server, run from jars that Maven fetches from Central
into a cache outside the repository (``deploy/kafka/``). What every local JVM service
shares (fetching, ports, process ownership, the state file, the lifecycle and the CLI)
is ``bridge.localservice``; the modules here are what is Kafka's own:

- ``jars``: fetch and cache the broker's jars (``python -m bridge.localkafka.jars``);
- ``broker``: ``LocalBroker``, one KRaft broker in a run directory (start or adopt,
  health-check, stop, status), with Kafka's provisioning before a start;
- ``cluster``: ``LocalCluster``, N such brokers in a static KRaft quorum under one run
  directory, each its own ``LocalBroker`` (``ClusterBroker``, which can also be crashed
  and paused, for the fault tests);
- ``rundir``: where one broker's files live inside its run directory;
- ``properties``: render ``server.properties`` and refuse overrides of the keys it manages;
- ``jvm``: find ``java``, format Kafka's storage and build the broker's command line;
- ``readiness``: wait until the broker serves metadata;
- ``state``: ``broker.json``, which lets another process find and stop the broker;
- ``ports``: the loopback host and port probe, for ``bridge.cli``;
- ``cli``: the ``kafka`` click group (``start [--brokers N]``, ``stop``, ``status``, ``jars``).

Only the error type lives here, so that importing the package stays cheap and running
``python -m bridge.localkafka.jars`` does not import that module twice.
"""

from bridge.errors import KafkaSetupError


class LocalKafkaError(KafkaSetupError):
    """Raised when the local broker cannot be fetched, started or stopped.

    It is a ``KafkaSetupError`` because, to the rest of the bridge, a local broker that
    will not come up is the same problem as an unreachable remote one: the main CLI
    reports every ``BridgeError`` the same way, without knowing about this package.

    The message always says what failed and carries the evidence (the tail of Maven's or
    the broker's output and the paths involved), because these failures happen on
    developer machines and CI where nobody can attach a debugger.
    """
