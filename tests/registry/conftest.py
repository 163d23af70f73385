"""The real schema registry for tests/registry is the session's ``registry_url`` fixture
(tests/conftest.py): one Apicurio JVM per test session (a start costs ~3.5 s on 2 cores), on
free ports in a temporary directory, like the broker; its storage is in memory, so every
session starts with no subjects. Tests keep out of each other's way by using topic
prefixes of their own (``topic_prefix``), which are part of every subject name.

Set ``TRACEBRIDGE_TEST_REGISTRY`` to the Confluent-compatible URL of a registry that is
already running (e.g. http://127.0.0.1:18081/apis/ccompat/v7) to use it instead.
"""
