"""A BPF ring buffer's two mappings, in memory, for producing bridge records fast.

The bridge's hot path is the native encoder walking a ring (``Encoder.drain``) and the
native producer sending the drained batch in one call. To write millions of records as
a bridge writes them, a benchmark fills this ring with ring records and hands it to the
very same ``drain``: the bytes that reach Kafka come out of the bridge's own encoder,
at its speed, with no kernel and no node involved.

The layout is the kernel's (bridge/sources/usdt/ring.py): a consumer position page,
then a producer position page followed by the data area, where each record is an 8-byte
header (length, page offset) and the record, padded to 8 bytes. Every fill starts at
the beginning of the data area, so nothing wraps and the second mapping of the data
area the ABI has is only there to be as large as ``drain`` checks.
"""

from __future__ import annotations

import mmap
import struct

from bridge.codec import _native

HEADER = struct.Struct("<II")  # the kernel's struct bpf_ringbuf_hdr: len, pg_off
PAGE_SIZE = mmap.PAGESIZE


def framed(record: bytes) -> bytes:
    """``record`` as it sits in the ring: header, bytes, padding to 8."""
    size = HEADER.size + len(record)
    return HEADER.pack(len(record), 0) + record + bytes(-size % 8)


class MemoryRing:
    """A ring of ``size`` bytes (a power of two) filled from offset 0 each time."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring size {size} is not a power of two")
        self.size = size
        self.consumer = bytearray(8)
        self.producer = bytearray(PAGE_SIZE + 2 * size)
        self.data = memoryview(self.producer)[PAGE_SIZE : PAGE_SIZE + size]

    def commit(self, used: int) -> None:
        """``used`` bytes of framed records were written from offset 0: publish them."""
        if used > self.size:
            raise ValueError(f"{used} bytes do not fit a ring of {self.size}")
        self.consumer[:8] = bytes(8)
        self.producer[:8] = used.to_bytes(8, "little")

    def drain(
        self, encoder: _native.Encoder, max_records: int
    ) -> tuple[list[_native.Encoded], list[_native.Rejected], int]:
        """Encode the committed records, as the bridge drains a kernel ring."""
        return encoder.drain(self.consumer, self.producer, self.size, PAGE_SIZE, max_records)
