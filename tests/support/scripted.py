"""A scripted source (no BPF) for tests of the bridge's lifecycle and modes.

The real USDT source is covered end to end in tests/bpf; this one feeds records built
by tests.support.raw_records, so failure paths and modes can be exercised precisely.
"""

from __future__ import annotations

import threading
import uuid

from bridge.codec import _native
from bridge.codec.native import configure
from bridge.codec.single_object import SchemaStore
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import SourceKind
from bridge.events.spec import EventSpec
from bridge.ledger import SourceCounts, Stream
from tests.support.raw_records import build_record

ADDED = BY_NAME["mempool:added"]


class ScriptedSession:
    """Fires ``count`` mempool:added events over a few polls, then the node 'exits'."""

    kind = SourceKind.USDT
    source_thread_cpu_s = 0.0
    node_pid: int | None = None
    node_endpoint: str | None = "scripted"
    attach_delay_ns: int | None = None

    def __init__(self, count: int) -> None:
        self.session_id = str(uuid.uuid4())
        self.record_types: tuple[EventSpec, ...] = (ADDED,)
        self.streams: tuple[Stream, ...] = (Stream(ADDED.tp_id, ADDED.name, (ADDED.tp_id,)),)
        self._pending = [
            build_record(ADDED, {"txid": bytes([i % 256]) * 32, "vsize": i, "fee": i}, seq=i)
            for i in range(1, count + 1)
        ]
        self._fired = count
        self._polls = 0

    def configure(self, encoder: _native.Encoder, store: SchemaStore) -> None:
        configure(encoder, self.record_types, store)

    def alive(self) -> bool:
        self._polls += 1
        return self._polls < 5

    def wait(self, timeout_s: float) -> None:
        pass

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected]]:
        good: list[_native.Encoded] = []
        dead: list[_native.Rejected] = []
        batch, self._pending = self._pending[:max_records], self._pending[max_records:]
        for raw in batch:
            encoded, rejected = encoder.encode_one(raw)
            good += encoded
            dead += rejected
        return good, dead

    def stop(self) -> None:
        pass

    def source_counts(self) -> dict[int, SourceCounts]:
        return {ADDED.tp_id: SourceCounts(fired=self._fired)}

    def close(self) -> None:
        pass


class ScriptedSource:
    reattach = True
    poll_interval_s = 0.001
    max_batch = 7

    def __init__(self, sessions: list[ScriptedSession], fail: Exception | None = None) -> None:
        self.sessions = sessions
        self.fail = fail
        self.closed = False

    def next_session(self, stop: threading.Event) -> ScriptedSession | None:
        if self.sessions:
            return self.sessions.pop(0)
        if self.fail is not None:
            raise self.fail
        return None

    def close(self) -> None:
        self.closed = True
