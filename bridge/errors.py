"""Errors the bridge raises, as one tree so callers can catch at the right depth.

::

    BridgeError
    ├── ConfigError            invalid configuration; the message names the field
    ├── SourceError            cannot read from the node
    │   ├── BpfLoadError       BCC could not compile, load or attach the program
    │   ├── NodeNotFoundError  no node process matches --pid / --pidfile / --binary
    │   ├── IpcConnectError    the node's IPC socket cannot be reached
    │   └── IpcVersionError    the node speaks another version of the IPC schemas
    └── SinkError              cannot write to Kafka
        └── KafkaSetupError    topics cannot be created or the broker is unreachable

Startup errors are raised and end the process with their message (no traceback). At
runtime nothing is raised out of a BPF poll or a Kafka callback: problems there become
counted losses, dead letters and log lines, so one bad record never stops the bridge.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error tracebridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration cannot be used; the message says which field and why."""


class SourceError(BridgeError):
    """The node cannot be read."""


class BpfLoadError(SourceError):
    """BCC failed to compile, load or attach the BPF program."""


class NodeNotFoundError(SourceError):
    """No running node process matches what was configured."""


class IpcConnectError(SourceError):
    """The node's IPC socket cannot be reached."""


class IpcVersionError(SourceError):
    """The node's IPC interface is not the version configured (the message says which)."""


class SinkError(BridgeError):
    """Kafka cannot be written to."""


class KafkaSetupError(SinkError):
    """The broker is unreachable or the topics cannot be created."""
