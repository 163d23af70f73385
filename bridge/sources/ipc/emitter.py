"""Where IPC callbacks hand their events: encoded at once, queued for the bridge thread.

Callbacks run on the Cap'n Proto event loop's thread; Kafka is fed from the bridge's
main thread. Encoding happens here, in the callback, so the queue between the two
threads holds finished records (and the per-stream seq and loss counters stay in the
native encoder, shared by both threads under the GIL). The queue is bounded: past
``max_pending`` a callback waits before returning. The node then slows down (its calls
are round trips) or, for NetMessageTrace, fills its own queue and reports drops, which
are counted exactly. The bridge never drops an IPC event itself for lack of room.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bridge.codec import _native
from bridge.codec.body import BodyEncoder
from bridge.codec.single_object import SchemaStore
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.avro_values import to_avro
from bridge.events.spec import EventSpec
from bridge.privacy.apply import redact_values, redacting

log = logging.getLogger(__name__)

# How long a callback sleeps between looks at a full queue: short next to a batch.
BACKPRESSURE_STEP_S = 0.002


class Emitter:
    """Encodes events from callbacks and queues them for :meth:`take`."""

    def __init__(self, encoder: _native.Encoder, store: SchemaStore, max_pending: int) -> None:
        self._encoder = encoder
        self._bodies = BodyEncoder(store)
        self._max_pending = max_pending
        self._good: collections.deque[_native.Encoded] = collections.deque()
        self._dead: collections.deque[_native.Rejected] = collections.deque()
        self.ready = threading.Event()
        self.net_list_id = 0

    # ------------------------------------------------------------------ inputs
    def net_batch(self, message: bytes, dropped: int, count: int) -> None:
        """One NetMessageTrace batch, serialised (see callbacks.NetTrace)."""
        good, dead = self._encoder.encode_capnp_list(
            self.net_list_id, message, dropped, time.monotonic_ns(), count
        )
        self._push(good, dead)

    def values(
        self, spec: EventSpec, values: tuple[Any, ...], raw: Callable[[], bytes] | None = None
    ) -> None:
        """An event of a record type the native encoder knows the fields of (utxocache).

        ``raw`` gives the bytes a dead letter keeps if the encoder rejects the values;
        it is only called then, so the usual path pays nothing for it."""
        good, dead = self._encoder.encode_values(spec.tp_id, time.monotonic_ns(), 0, values)
        if dead and raw is not None:
            kept = raw()
            dead = [(tp_id, seq, kept, reason) for tp_id, seq, _, reason in dead]
        self._push(good, dead)

    def body(self, spec: EventSpec, values: Mapping[str, Any]) -> None:
        """An IPC-only event: its fields encoded here, the envelope by the native encoder.

        A value that does not fit the schema (a hash of the wrong size, say) makes the
        event a counted dead letter, keeping its first bytes value and the reason.
        Addresses (a peer's, a banned subnet) are redacted first, as the native encoder
        redacts those of the records it writes."""
        try:
            if redacting(self._encoder):
                values = redact_values(self._encoder, spec.fields, values)
            body = self._bodies.encode(full_name(event_schema(spec)), to_avro(spec.fields, values))
        except (ValueError, TypeError, KeyError) as error:
            raw = next((v for v in values.values() if isinstance(v, bytes)), b"")
            self.reject(spec, f"{type(error).__name__}: {error}", raw)
            return
        self._push([self._encoder.encode_body(spec.tp_id, time.monotonic_ns(), 0, body)], [])

    def reject(self, spec: EventSpec, reason: str, raw: bytes = b"") -> None:
        """Count the next event of ``spec``'s stream as undecodable, with why."""
        seq = self._encoder.reject_next(spec.tp_id, 0)
        self._push([], [(spec.tp_id, seq, raw, reason)])

    def _push(self, good: list[_native.Encoded], dead: list[_native.Rejected]) -> None:
        self._good.extend(good)
        self._dead.extend(dead)
        if good or dead:
            self.ready.set()

    # ------------------------------------------------------------------ flow control
    async def wait_for_room(self) -> None:
        """Hold a callback while the bridge thread is behind (see the module docstring)."""
        while len(self._good) > self._max_pending:
            await asyncio.sleep(BACKPRESSURE_STEP_S)

    # ------------------------------------------------------------------ output
    def take(self, max_records: int) -> tuple[list[_native.Encoded], list[_native.Rejected]]:
        """Up to ``max_records`` finished records, and every rejected one."""
        good: list[_native.Encoded] = []
        pop = self._good.popleft
        try:
            for _ in range(min(max_records, len(self._good))):
                good.append(pop())
        except IndexError:  # raced with nothing: deque only grows from the other thread
            pass
        dead = []
        while self._dead:
            dead.append(self._dead.popleft())
        return good, dead

    def pending(self) -> int:
        return len(self._good)
