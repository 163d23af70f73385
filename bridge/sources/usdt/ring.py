"""Reading a BPF ring buffer through its own memory mapping.

BCC's ``open_ring_buffer`` calls a Python function per record (2-3 us each, see
``../shared/reference/performance-limits.md``). Mapping the ring directly and letting
the native encoder walk every committed record in one call removes all per-event
Python work from the drain. The mapping follows the kernel's ring buffer ABI: one
writable page holding the consumer position, then (read-only) the producer position
page followed by the data area, which the kernel maps twice in a row so a record that
wraps around the end is still contiguous.
"""

from __future__ import annotations

import mmap

from bridge.codec import _native
from bridge.sources.usdt.program import PAGE_SIZE


class RingReader:
    """One mmapped ring buffer, drained in batches by the native encoder."""

    def __init__(self, name: str, map_fd: int, size_bytes: int) -> None:
        if size_bytes <= 0 or size_bytes & (size_bytes - 1):
            raise ValueError(f"ring {name}: size {size_bytes} is not a power of two")
        self.name = name
        self.map_fd = map_fd
        self.size = size_bytes
        self._consumer = mmap.mmap(
            map_fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._producer = mmap.mmap(
            map_fd, PAGE_SIZE + 2 * size_bytes, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE_SIZE
        )

    def fileno(self) -> int:
        """The map fd, pollable for the kernel's (adaptive) wakeups."""
        return self.map_fd

    def pending_bytes(self) -> int:
        """Bytes committed but not yet consumed (a lag gauge)."""
        consumer = int.from_bytes(self._consumer[:8], "little")
        producer = int.from_bytes(self._producer[:8], "little")
        return producer - consumer

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected], int]:
        """Encode up to ``max_records`` committed records and release their space."""
        return encoder.drain(self._consumer, self._producer, self.size, PAGE_SIZE, max_records)

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()
