"""The broker's loopback host and port probe, for callers outside this package.

The port helpers are shared with the local registry and live in
``bridge.localservice.ports``; ``bridge.cli.kafka_target`` imports these two from here.
"""

from bridge.localservice.ports import HOST, port_accepts

__all__ = ["HOST", "port_accepts"]
