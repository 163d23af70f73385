"""Following the chain tip through the merged Mining interface.

This is what IPC offers today on a real bitcoin-node with no proposal applied:
``Mining.getTip`` once, then ``waitTipChanged`` in a loop (a long poll the node answers
when the tip moves or the timeout passes), each new tip a ``mining:tip_changed`` record
together with ``isInitialBlockDownload``.

Two answers are not tips, as a real node shows (master d84fc352):

- **No tip at all** (an empty ``BlockRef``: ``hash`` of 0 bytes): C++
  ``waitTipChanged`` returned ``std::nullopt`` because the node is shutting down, and it
  keeps answering so at once. That is the end of this stream, not an event: following
  stops, nothing is emitted, nothing counts as lost.
- ``currentTip`` is read by the node as a ``uint256``: fewer than 32 bytes make it throw
  ``SpanReader::read(): end of data`` (and log an uncaught exception). So the bridge only
  ever sends a 32-byte hash: the last tip it saw, or 32 zero bytes (``uint256::ZERO``,
  "any tip", as Core's own ``createNewBlock`` asks) before it has seen one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bridge.events.catalog import BY_NAME
from bridge.sources.ipc.emitter import Emitter

log = logging.getLogger(__name__)

TIP = BY_NAME["mining:tip_changed"]
# waitTipChanged's timeout is in milliseconds; a second keeps shutdown prompt.
WAIT_MS = 1000.0
HASH_BYTES = 32
# uint256::ZERO: the currentTip that any tip differs from.
ANY_TIP = bytes(HASH_BYTES)


async def follow_tip(mining: Any, ctx: Any, emitter: Emitter, stopping: Callable[[], bool]) -> bool:
    """Emit every tip the node reports until ``stopping()``; return True if the node said
    it is shutting down (the caller then waits for it to close the connection)."""
    current = ANY_TIP  # what waitTipChanged is asked to differ from: always 32 bytes
    seen: bytes | None = None  # the last answer emitted (or dead-lettered)
    tip = await mining.getTip(ctx)
    if tip.hasResult:
        seen = await _emit(mining, ctx, emitter, tip.result)
        if len(seen) == HASH_BYTES:
            current = seen
    while not stopping():
        answer = (await mining.waitTipChanged(ctx, current, WAIT_MS)).result
        block_hash = bytes(answer.hash)
        if not block_hash:
            return True
        if block_hash == seen:
            if block_hash != current:
                # A malformed tip still stands (it was dead-lettered once): ask again
                # after the timeout rather than in a tight loop.
                await asyncio.sleep(WAIT_MS / 1000)
            continue
        seen = await _emit(mining, ctx, emitter, answer)
        if len(seen) == HASH_BYTES:
            current = seen
    return False


async def _emit(mining: Any, ctx: Any, emitter: Emitter, ref: Any) -> bytes:
    block_hash = bytes(ref.hash)
    ibd = (await mining.isInitialBlockDownload(ctx)).result
    emitter.body(
        TIP, {"block_hash": block_hash, "height": ref.height, "initial_block_download": ibd}
    )
    await emitter.wait_for_room()
    return block_hash
