"""Putting each (node, session, stream) back in seq order, with bounded memory.

Records of one stream reach Kafka almost, but not quite, in seq order: the seq is taken
at the probe, and two CPUs firing the same tracepoint can commit their ring records in
the other order. Kafka then keeps that order. So each stream passes through a small
reorder buffer: a record leaves as soon as everything before it has left or is known
lost (its ``lost_before`` covers the gap in front of it), or when the buffer holds more
than ``window`` records (a gap nobody reported, e.g. producer losses, or records not
in the range read). A record arriving after its successors already left is passed on
at once and counted as ``late``: order is then only as good as the window allowed.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bridge.replay.events import Event, StreamKey

DEFAULT_WINDOW = 4096


@dataclass
class _Buffer:
    next_seq: int = 1
    heap: list[tuple[int, int, Event]] = field(default_factory=list)


class SeqOrder:
    """Reorder events per stream by seq (see the module docstring)."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self.late = 0
        self._buffers: dict[StreamKey, _Buffer] = {}
        self._tiebreak = itertools.count()

    def push(self, event: Event) -> list[Event]:
        """The events that can leave now that ``event`` arrived (possibly none)."""
        envelope = event.envelope
        key = (envelope["node_id"], envelope["session_id"], envelope["stream"])
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = _Buffer()
        seq = envelope["seq"]
        if not buffer.heap and seq - envelope["lost_before"] <= buffer.next_seq:
            # the common case: next in line, or a gap its own lost_before explains
            if seq >= buffer.next_seq:
                buffer.next_seq = seq + 1
            else:
                self.late += 1
            return [event]
        heapq.heappush(buffer.heap, (seq, next(self._tiebreak), event))
        return self._release(buffer)

    def _release(self, buffer: _Buffer) -> list[Event]:
        out: list[Event] = []
        heap = buffer.heap
        while heap:
            seq, _, event = heap[0]
            if seq < buffer.next_seq:
                self.late += 1
            elif not (
                seq == buffer.next_seq
                or seq - event.envelope["lost_before"] <= buffer.next_seq
                or len(heap) > self.window
            ):
                break
            heapq.heappop(heap)
            out.append(event)
            buffer.next_seq = max(buffer.next_seq, seq + 1)
        return out

    def flush(self) -> list[Event]:
        """Everything still held, each stream in seq order (the end of the input)."""
        out: list[Event] = []
        for buffer in self._buffers.values():
            out.extend(event for _, _, event in sorted(buffer.heap))
            buffer.heap.clear()
        return out


def in_seq_order(events: Iterable[Event], window: int = DEFAULT_WINDOW) -> Iterator[Event]:
    """``events`` with every stream in seq order (see :class:`SeqOrder`)."""
    order = SeqOrder(window)
    for event in events:
        yield from order.push(event)
    yield from order.flush()
