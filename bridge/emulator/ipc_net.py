"""NetMessageTrace delivery: the per-subscriber queue, and fast ping batches.

Semantics follow the 0xB10C prototype (``src/node/net_trace.cpp``): each subscriber
has a queue of at most ``maxQueueEvents`` events (and ``maxQueueBytes`` of payloads
larger than the 64 bytes the prototype stores inline); an event that does not fit is
dropped and counted. One sender per subscriber drains up to ``maxBatchEvents`` events
(and ``maxBatchBytes`` of payload), waits ``maxBatchWaitUs`` for a batch that is not
full, and sends it with ``dropped`` = drops since the previous batch, waiting for each
``messages()`` call to return before the next. Options are clamped as the
prototype's ``ClampOptions`` does.

Ping mode keeps events as ranges of sequence numbers, not objects, and
:class:`PingBatchTemplate` builds a batch by patching a prebuilt message's bytes
(timestamps, nonces, ping/pong) with strided memoryview writes, then letting the
Cap'n Proto library copy the list into the request. That is about ten times cheaper
per event than setting fields from Python, so the emulator outruns a pycapnp client.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from bridge.emulator.ipc_values import (
    PING_CONN_TYPE,
    PING_PEER_ADDR,
    PING_PEER_ID,
    NetEvent,
    ping_event,
)

__all__ = [
    "NetOptions",
    "NetQueue",
    "PingBatchTemplate",
    "PingRange",
]

# Prototype bounds (net_trace.cpp).
MAX_PAYLOAD_BYTES: Final = 4 * 1024 * 1024
MAX_QUEUE_EVENTS: Final = 1 << 20
MAX_BATCH_WAIT_US: Final = 1_000_000
INLINE_PAYLOAD: Final = 64


@dataclass(frozen=True, slots=True)
class NetOptions:
    """NetMessageTraceOptions after the prototype's clamping."""

    inbound: bool
    outbound: bool
    max_payload_bytes: int
    max_queue_events: int
    max_batch_events: int
    max_batch_wait_us: int
    max_queue_bytes: int
    max_batch_bytes: int

    @classmethod
    def clamped(cls, o: Any) -> NetOptions:
        """From a pycapnp NetMessageTraceOptions reader."""
        payload = min(int(o.maxPayloadBytes), MAX_PAYLOAD_BYTES)
        queue = min(max(int(o.maxQueueEvents), 1), MAX_QUEUE_EVENTS)
        return cls(
            inbound=bool(o.inbound),
            outbound=bool(o.outbound),
            max_payload_bytes=payload,
            max_queue_events=queue,
            max_batch_events=min(max(int(o.maxBatchEvents), 1), queue),
            max_batch_wait_us=min(int(o.maxBatchWaitUs), MAX_BATCH_WAIT_US),
            max_queue_bytes=max(int(o.maxQueueBytes), payload),
            max_batch_bytes=max(int(o.maxBatchBytes), 1),
        )

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "inbound": self.inbound,
            "outbound": self.outbound,
            "maxPayloadBytes": self.max_payload_bytes,
            "maxQueueEvents": self.max_queue_events,
            "maxBatchEvents": self.max_batch_events,
            "maxBatchWaitUs": self.max_batch_wait_us,
            "maxQueueBytes": self.max_queue_bytes,
            "maxBatchBytes": self.max_batch_bytes,
        }


@dataclass(frozen=True, slots=True)
class PingRange:
    """``count`` ping-mode events ``first, first+step, ...``, all stamped ``ts_us``."""

    first: int
    count: int
    step: int
    ts_us: int

    def split(self, n: int) -> tuple[PingRange, PingRange]:
        head = PingRange(self.first, n, self.step, self.ts_us)
        tail = PingRange(self.first + n * self.step, self.count - n, self.step, self.ts_us)
        return head, tail

    def events(self, ping_size: int) -> Iterator[NetEvent]:
        for k in range(self.count):
            yield ping_event(self.first + k * self.step, ping_size, self.ts_us)


Piece = PingRange | NetEvent


class NetQueue:
    """One subscriber's bounded queue (events as NetEvents or PingRanges)."""

    def __init__(self, options: NetOptions, ping_size: int) -> None:
        self.opts = options
        self._ping_size = ping_size
        self._items: deque[Piece] = deque()
        self.events = 0
        self.queued_bytes = 0
        self.dropped_since_batch = 0
        self.nonempty = asyncio.Event()

    def _payload_len(self, piece: Piece) -> int:
        size = self._ping_size if isinstance(piece, PingRange) else piece.msg_size
        return min(size, self.opts.max_payload_bytes)

    def room(self) -> int:
        return self.opts.max_queue_events - self.events

    def offer(self, piece: Piece) -> tuple[int, int]:
        """Queue what fits; returns (accepted, dropped) events."""
        n = piece.count if isinstance(piece, PingRange) else 1
        fit = min(n, self.room())
        plen = self._payload_len(piece)
        if plen > INLINE_PAYLOAD and fit > 0:
            fit = min(fit, (self.opts.max_queue_bytes - self.queued_bytes) // plen)
        if fit > 0:
            if isinstance(piece, PingRange):
                self._items.append(piece if fit == n else piece.split(fit)[0])
            else:
                self._items.append(piece)
            self.events += fit
            if plen > INLINE_PAYLOAD:
                self.queued_bytes += fit * plen
            self.nonempty.set()
        dropped = n - max(fit, 0)
        self.dropped_since_batch += dropped
        return max(fit, 0), dropped

    def take(
        self, max_events: int, max_bytes: int, have_events: int, have_bytes: int
    ) -> tuple[list[Piece], int, int]:
        """Move up to the batch limits out of the queue: (pieces, events, payload bytes).

        Like the prototype's Drain: stop at ``max_events``, or once the batch holds
        ``max_bytes`` of payload (one event always fits).
        """
        out: list[Piece] = []
        events, nbytes = have_events, have_bytes
        while self._items and events < max_events and (events == 0 or nbytes < max_bytes):
            piece = self._items[0]
            plen = self._payload_len(piece)
            if isinstance(piece, PingRange):
                want = max_events - events
                if plen > 0:
                    by_bytes = (
                        max(1, -(-(max_bytes - nbytes) // plen))
                        if events
                        else max(1, -(-max_bytes // plen))
                    )
                    want = min(want, by_bytes)
                if want < piece.count:
                    head, tail = piece.split(want)
                    self._items[0] = tail
                    piece = head
                else:
                    self._items.popleft()
                n = piece.count
            else:
                self._items.popleft()
                n = 1
            out.append(piece)
            events += n
            nbytes += n * plen
            self.events -= n
            if plen > INLINE_PAYLOAD:
                self.queued_bytes -= n * plen
        if not self._items:
            self.nonempty.clear()
        return out, events - have_events, nbytes - have_bytes

    def clear(self) -> int:
        """Empty the queue (subscription ended); returns the events discarded."""
        n = self.events
        self._items.clear()
        self.events = 0
        self.queued_bytes = 0
        self.nonempty.clear()
        return n


# --------------------------------------------------------------------------------------
# Fast ping batches.
# --------------------------------------------------------------------------------------

_MARK_TS: Final = 0x5A5A_0000_0000_0000
_MARK_NONCE: Final = 0x3C3C_0000_0000_0000
_PING: Final = int.from_bytes(b"ping\0\0\0\0", "little")
_PONG: Final = int.from_bytes(b"pong\0\0\0\0", "little")
# NetMessage is 4 data words (inbound, peerId, msgSize, timestampUs) + 4 pointers.
_STRUCT_WORDS: Final = 8


class TemplateError(RuntimeError):
    """The prebuilt message does not have the layout the patcher expects."""


class PingBatchTemplate:
    """A prebuilt ``messages`` parameter struct of ``n`` ping/pong NetMessages.

    Built once per subscriber (the payload cut and batch size are per subscriber) with
    marker values, then the markers' word positions are found in the serialized bytes.
    :meth:`load` patches timestamps, nonces and the ping/pong kind of each element and
    the list's element count, and returns a reader over the bytes for the request to
    copy. Needs the whole nonce in the payload (``maxPayloadBytes`` 0 or >= 8).
    """

    def __init__(self, tn: Any, capnp: Any, n: int, ping_size: int, max_payload: int) -> None:
        if 0 < max_payload < 8:
            raise TemplateError("a payload cut inside the nonce needs the slow path")
        self.n = n
        self.plen = min(ping_size, max_payload)
        params = tn.NetMessageTrace.schema.methods["messages"].param_type
        self._module = capnp._StructModule(params, "messages$Params")
        pwords = (self.plen + 7) // 8
        words = 64 + n * (_STRUCT_WORDS + 4 + pwords + 4)
        builder = capnp._MallocMessageBuilder(words)
        root = builder.init_root(params)
        lst = root.init("messages", n)
        for i in range(n):
            m = lst[i]
            m.inbound = True
            m.peerId = PING_PEER_ID
            m.peerAddr = PING_PEER_ADDR
            m.connType = PING_CONN_TYPE
            m.msgType = "ping"
            m.msgSize = ping_size
            if self.plen:
                m.payload = (_MARK_NONCE + i).to_bytes(8, "little") + bytes(self.plen - 8)
            m.timestampUs = _MARK_TS + i
        self.buf = bytearray(root.to_bytes())
        words_view = memoryview(self.buf).cast("Q")
        if words_view[0] & 0xFFFFFFFF != 0:  # segment table: (segment count - 1) first
            raise TemplateError("template spans several segments")
        self._ts = self._strided(words_view, lambda w, i: w == _MARK_TS + i)
        self._nonce = (
            self._strided(words_view, lambda w, i: w == _MARK_NONCE + i) if self.plen else (0, 0)
        )
        kinds = [k for k in range(len(words_view)) if words_view[k] == _PING]
        if len(kinds) != n:
            raise TemplateError("msgType words not found")
        self._kind = (kinds[0], kinds[1] - kinds[0] if n > 1 else 1)
        if n > 1 and kinds != list(range(kinds[0], kinds[0] + self._kind[1] * n, self._kind[1])):
            raise TemplateError("msgType words are not evenly spaced")
        # inbound is bit 0 of data word 0, three words before timestampUs (word 3).
        self._inb = (self._ts[0] - 3, self._ts[1])
        if any(words_view[self._inb[0] + i * self._inb[1]] != 1 for i in range(n)):
            raise TemplateError("inbound words not where expected")
        self._list_ptr, self._tag = self._find_list(words_view)
        words_view.release()

    def _strided(self, w: memoryview, match: Any) -> tuple[int, int]:
        hits = [k for k in range(len(w)) if match(w[k], 0)]
        if len(hits) != 1:
            raise TemplateError("marker not found exactly once")
        first = hits[0]
        if self.n == 1:
            return first, 1
        second = [k for k in range(first + 1, len(w)) if match(w[k], 1)]
        step = second[0] - first
        for i in range(self.n):
            if not match(w[first + i * step], i):
                raise TemplateError("markers are not evenly spaced")
        return first, step

    def _find_list(self, w: memoryview) -> tuple[int, int]:
        for k in range(1, len(w)):
            ptr = w[k]
            if ptr & 3 == 1 and (ptr >> 32) & 7 == 7 and ptr >> 35 == self.n * _STRUCT_WORDS:
                offset = (ptr >> 2) & 0x3FFFFFFF
                tag = k + 1 + offset
                if tag < len(w) and (w[tag] >> 2) & 0x3FFFFFFF == self.n:
                    return k, tag
        raise TemplateError("messages list pointer not found")

    def load(self, pieces: list[PingRange]) -> Any:
        """Patch the bytes for ``pieces`` (at most ``n`` events); return a context manager
        yielding the parameter struct reader (its ``messages`` is the batch)."""
        q = memoryview(self.buf).cast("q")
        u = memoryview(self.buf).cast("Q")
        try:
            j = 0
            ts0, ts_step = self._ts
            no0, no_step = self._nonce
            k0, k_step = self._kind
            i0, i_step = self._inb
            for p in pieces:
                c = p.count
                q[ts0 + j * ts_step : ts0 + (j + c) * ts_step : ts_step] = (
                    array("q", (p.ts_us,)) * c
                )
                if p.step == 2 or c == 1:
                    ping = p.first % 2 == 0
                    u[k0 + j * k_step : k0 + (j + c) * k_step : k_step] = (
                        array("Q", (_PING if ping else _PONG,)) * c
                    )
                    u[i0 + j * i_step : i0 + (j + c) * i_step : i_step] = (
                        array("Q", (1 if ping else 0,)) * c
                    )
                    if self.plen:
                        nonces = array("Q", range(p.first // 2, p.first // 2 + c))
                        u[no0 + j * no_step : no0 + (j + c) * no_step : no_step] = nonces
                else:
                    # Alternating ping/pong: fill positions of even and odd seqs apart.
                    for parity in (0, 1):
                        off = (parity - p.first) % 2  # first position holding this parity
                        cnt = (c - off + 1) // 2
                        if cnt <= 0:
                            continue
                        a, b = j + off, j + off + 2 * cnt
                        u[k0 + a * k_step : k0 + b * k_step : 2 * k_step] = (
                            array("Q", (_PONG if parity else _PING,)) * cnt
                        )
                        u[i0 + a * i_step : i0 + b * i_step : 2 * i_step] = (
                            array("Q", (0 if parity else 1,)) * cnt
                        )
                        if self.plen:
                            first_nonce = (p.first + off) // 2
                            u[no0 + a * no_step : no0 + b * no_step : 2 * no_step] = array(
                                "Q", range(first_nonce, first_nonce + cnt)
                            )
                j += c
            if j == 0 or j > self.n:
                raise ValueError(f"batch of {j} events does not fit a template of {self.n}")
            ptr = u[self._list_ptr]
            u[self._list_ptr] = (ptr & ((1 << 35) - 1)) | ((j * _STRUCT_WORDS) << 35)
            tag = u[self._tag]
            u[self._tag] = (tag & ~(0x3FFFFFFF << 2)) | (j << 2)
        finally:
            q.release()
            u.release()
        return self._module.from_bytes(self.buf)
