"""Following the chain tip through the merged Mining interface.

This is what IPC offers today on a real bitcoin-node with no proposal applied:
``Mining.getTip`` once, then ``waitTipChanged`` in a loop (a long poll the node answers
when the tip moves or the timeout passes), each new tip a ``mining:tip_changed`` record
together with ``isInitialBlockDownload``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.events.catalog import BY_NAME
from bridge.sources.ipc.emitter import Emitter

TIP = BY_NAME["mining:tip_changed"]
# waitTipChanged's timeout is in milliseconds; a second keeps shutdown prompt.
WAIT_MS = 1000.0


async def follow_tip(mining: Any, ctx: Any, emitter: Emitter, stopping: Callable[[], bool]) -> None:
    current = b""
    tip = await mining.getTip(ctx)
    if tip.hasResult:
        current = await _emit(mining, ctx, emitter, tip.result)
    while not stopping():
        answer = await mining.waitTipChanged(ctx, current, WAIT_MS)
        if bytes(answer.result.hash) != current:
            current = await _emit(mining, ctx, emitter, answer.result)


async def _emit(mining: Any, ctx: Any, emitter: Emitter, ref: Any) -> bytes:
    block_hash = bytes(ref.hash)
    ibd = (await mining.isInitialBlockDownload(ctx)).result
    emitter.body(
        TIP, {"block_hash": block_hash, "height": ref.height, "initial_block_download": ibd}
    )
    await emitter.wait_for_room()
    return block_hash
