"""The machinery shared by the local JVM services that tests and the demo run, without Docker.

``bridge.localkafka`` (an Apache Kafka broker) and ``bridge.localregistry`` (an Apicurio
schema registry) are the same kind of thing: one JVM, fetched from Maven Central into a
cache outside the repository, run in a *run directory* that holds its config, its output
and a state file, and recognised in ``/proc`` by a marker on its command line so that a
stale pid is never signalled. Everything that follows from that lives here once:

- ``cache``: the cache root (``$TRACEBRIDGE_CACHE_DIR``) and a file lock for filling it;
- ``maven``: run a POM's ``package`` phase into the cache, once, under that lock, with a
  stamp keyed by the POM's digest;
- ``output``: the tail of a command's or a JVM's output, for error messages;
- ``ports``: pick free loopback ports and refuse busy ones before a JVM is started;
- ``process``: recognise our JVM by its marker, signal only it, spawn and run commands;
- ``state``: the state file (pid, ports, marker) that lets another process find the JVM;
- ``service``: ``LocalService``, the lifecycle (start or adopt, readiness, stop, status);
- ``cli``: build the ``start``/``stop``/``status``/fetch click group of a service.

A service package keeps only what is its own: its config file, its readiness probe, its
Maven coordinates and the Java it needs. This package raises no error type of its own:
each function is handed the service's error class, so that ``except LocalKafkaError``
keeps catching everything the local broker raises.
"""
