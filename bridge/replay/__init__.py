"""Reading the bridge's topics back: replay, merge, republish, audit.

The public API (see docs/replay.md)::

    from bridge.replay import Event, read_events, merge_by_time

``read_events`` yields :class:`Event` values: the Avro record name, the envelope
(node, session, stream, seq, times, losses) and the event's own fields, each
(node, session, stream) in seq order.
"""

from bridge.replay.api import ReadStats, read_events, read_records
from bridge.replay.events import BridgeRecord, Envelope, Event, Undecodable
from bridge.replay.kafka_range import ReplayError, Window
from bridge.replay.merge import first_seen, merge_by_time, propagation_delays

__all__ = [
    "BridgeRecord",
    "Envelope",
    "Event",
    "ReadStats",
    "ReplayError",
    "Undecodable",
    "Window",
    "first_seen",
    "merge_by_time",
    "propagation_delays",
    "read_events",
    "read_records",
]
