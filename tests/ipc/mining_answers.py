"""What ``Mining.waitTipChanged`` answers around a node's shutdown, asked the same way of
the real bitcoin-node (tests/realnode/test_ipc_real.py) and of the emulated one
(tests/ipc/test_ipc_shutdown.py), so the emulator is held to what the real node does.

The client is the bridge's own connection code (Init.construct with a ThreadMap, a
Context on every call), which is what the bridge sends; the questions are asked
directly, not through the tip follower, so a follower bug cannot hide an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import capnp

from bridge.sources.ipc.connection import open_connection
from bridge.sources.ipc.schemas import SchemaSet

# What a node answers to a currentTip shorter than a uint256.
SHORT_TIP_ERROR = "std::exception: SpanReader::read(): end of data"


@dataclass(frozen=True)
class ShutdownAnswers:
    """The answers: errors for short currentTips, then the answer of a call that was
    waiting (60 s timeout) when the node was told to stop."""

    short_tip_errors: list[str]  # to a 0-byte and a 31-byte currentTip
    hash_at_shutdown: bytes
    height_at_shutdown: int
    waited_after_stop_s: float


async def _timed(promise: Any) -> tuple[Any, float]:
    answer = await promise
    return answer, time.monotonic()


async def mining_answers_at_shutdown(
    socket: Path, schemas: SchemaSet, stop: Callable[[], object]
) -> ShutdownAnswers:
    """Ask, then call ``stop`` (blocking: it returns once the node has exited) in a
    thread while a ``waitTipChanged`` on the current tip is pending."""
    conn = await open_connection(socket, schemas)
    ctx = conn.context
    mining = (await conn.init.makeMining(ctx)).result
    current = bytes((await mining.getTip(ctx)).result.hash)
    errors = []
    for short in (b"", current[:31]):
        try:
            await mining.waitTipChanged(ctx, short, 100.0)
        except capnp.KjException as error:
            errors.append(str(error.description))
        else:
            errors.append("")
    waiting = asyncio.ensure_future(_timed(mining.waitTipChanged(ctx, current, 60_000.0)))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "the tip did not change: the call must still be waiting"
    stopped_at = time.monotonic()
    await asyncio.to_thread(stop)
    answer, answered_at = await asyncio.wait_for(waiting, 30)
    ref = answer.result
    return ShutdownAnswers(
        short_tip_errors=errors,
        hash_at_shutdown=bytes(ref.hash),
        height_at_shutdown=int(ref.height),
        waited_after_stop_s=answered_at - stopped_at,
    )


def check_shutdown_answers(answers: ShutdownAnswers) -> None:
    """What a real bitcoin-node (master d84fc352) answers; the emulator must match."""
    assert len(answers.short_tip_errors) == 2
    for error in answers.short_tip_errors:
        assert SHORT_TIP_ERROR in error, answers
    # No tip at all (C++ std::nullopt): an empty BlockRef, promptly.
    assert (answers.hash_at_shutdown, answers.height_at_shutdown) == (b"", 0), answers
    assert answers.waited_after_stop_s < 10, answers
