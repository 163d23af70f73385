"""A node shutting down, over IPC: the tip follower, the session, and the emulated node.

A real bitcoin-node (master d84fc352) that is shutting down answers
``Mining.waitTipChanged`` with no tip (an empty BlockRef), at once and for every later
call, still accepts connections until its IPC loop ends, and hands out a null Mining
from ``Init.makeMining``; a ``currentTip`` shorter than 32 bytes makes it throw. The
bridge used to take the empty answer for a new tip (a dead letter, a loss, then a call
with an empty ``currentTip``) and to open a session against the dying node. Here the
follower is driven by a scripted Mining, and the emulated node is held to the real
node's answers (tests/realnode/test_ipc_real.py asks the real one the same questions).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

capnp = pytest.importorskip("capnp")

from bridge.config import IpcSourceConfig  # noqa: E402
from bridge.emulator.ipc_node import IpcNode  # noqa: E402
from bridge.emulator.ipc_scenario import IpcScenario  # noqa: E402
from bridge.errors import IpcConnectError  # noqa: E402
from bridge.events.spec import EventSpec  # noqa: E402
from bridge.sources.ipc import tip  # noqa: E402
from bridge.sources.ipc.connection import open_connection  # noqa: E402
from bridge.sources.ipc.emitter import Emitter  # noqa: E402
from bridge.sources.ipc.schemas import load_schema_set  # noqa: E402
from bridge.sources.ipc.session import IpcSourceSession  # noqa: E402
from tests.ipc.ipc_harness import (  # noqa: E402
    TIP_STREAM,
    dead_letters,
    ipc_settings,
    running_ipc_bridge,
)
from tests.ipc.mining_answers import (  # noqa: E402
    check_shutdown_answers,
    mining_answers_at_shutdown,
)
from tests.support.pipeline import final_books, read_topics, verdicts  # noqa: E402

pytestmark = pytest.mark.ipc

H1, H2, H3 = (bytes([n]) * 32 for n in (1, 2, 3))
SHORT = bytes([9]) * 31
NO_TIP = (b"", 0)  # what a node that is shutting down answers


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run a coroutine inside pycapnp's KJ loop, as every pycapnp client must."""

    async def main() -> Any:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(capnp.run(main()))


# ------------------------------------------------------------------------------------
# The tip follower against a scripted Mining.
# ------------------------------------------------------------------------------------


def _ref(block_hash: bytes, height: int) -> SimpleNamespace:
    return SimpleNamespace(hash=block_hash, height=height)


class ScriptedMining:
    """Answers waitTipChanged from a script, as a node would; rejects a short
    currentTip as a real node does. Past the script it answers ``then`` (by default no
    tip: the node is shutting down)."""

    def __init__(
        self,
        tip_now: tuple[bytes, int] | None,
        answers: list[tuple[bytes, int]],
        then: tuple[bytes, int] = NO_TIP,
    ) -> None:
        self.tip_now = tip_now
        self.answers = list(answers)
        self.then = then
        self.asked: list[bytes] = []
        self.asked_at: list[float] = []

    async def getTip(self, ctx: object) -> SimpleNamespace:
        if self.tip_now is None:
            return SimpleNamespace(hasResult=False, result=_ref(b"", 0))
        return SimpleNamespace(hasResult=True, result=_ref(*self.tip_now))

    async def waitTipChanged(self, ctx: object, current: bytes, timeout: float) -> Any:
        self.asked.append(bytes(current))
        self.asked_at.append(time.monotonic())
        if len(current) < 32:
            raise RuntimeError("std::exception: SpanReader::read(): end of data")
        answer = self.answers.pop(0) if self.answers else self.then
        await asyncio.sleep(0)  # a round trip
        return SimpleNamespace(result=_ref(*answer))

    async def isInitialBlockDownload(self, ctx: object) -> SimpleNamespace:
        return SimpleNamespace(result=False)


class RecordingEmitter:
    """Stands in for the Emitter: keeps what the follower emits."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def body(self, spec: EventSpec, values: dict[str, Any]) -> None:
        assert spec.name == "mining:tip_changed"
        self.bodies.append(dict(values))

    async def wait_for_room(self) -> None:
        return None


def follow(mining: ScriptedMining, stop_after_s: float | None = None) -> tuple[bool, list[bytes]]:
    emitter = RecordingEmitter()
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s

    def stopping() -> bool:
        return deadline is not None and time.monotonic() > deadline

    async def go() -> bool:
        return await tip.follow_tip(mining, None, cast(Emitter, emitter), stopping)

    said_shutdown = asyncio.run(asyncio.wait_for(go(), 30))
    return said_shutdown, [b["block_hash"] for b in emitter.bodies]


def test_no_tip_ends_following_without_an_event() -> None:
    mining = ScriptedMining((H1, 1), [(H1, 1), (H2, 2), NO_TIP, (H3, 3)])
    said_shutdown, emitted = follow(mining)
    assert said_shutdown is True
    assert emitted == [H1, H2], "the empty answer is not a tip"
    assert mining.asked == [H1, H1, H2], "no call after the node said it is shutting down"
    assert mining.answers == [(H3, 3)]


def test_current_tip_is_32_zero_bytes_before_any_tip() -> None:
    """getTip without a result (no tip yet): ask for any tip, as Core's own
    createNewBlock does with uint256::ZERO, never with an empty currentTip."""
    mining = ScriptedMining(None, [(H1, 1)])
    said_shutdown, emitted = follow(mining)
    assert said_shutdown is True
    assert emitted == [H1]
    assert mining.asked == [bytes(32), H1]


def test_a_malformed_tip_is_emitted_once_and_never_sent_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 31-byte hash is the emitter's to dead-letter, once; the node is not asked
    about it (it could not read it), and the follower does not spin while it stands."""
    monkeypatch.setattr(tip, "WAIT_MS", 100.0)
    mining = ScriptedMining((H1, 1), [(SHORT, 2), (SHORT, 2), (SHORT, 2), (H3, 3)])
    said_shutdown, emitted = follow(mining)
    assert said_shutdown is True
    assert emitted == [H1, SHORT, H3]
    assert mining.asked == [H1, H1, H1, H1, H3]
    gaps = [b - a for a, b in zip(mining.asked_at[1:], mining.asked_at[2:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps[:2]), f"asked again at once: {gaps}"


def test_stopping_ends_following_without_a_shutdown() -> None:
    mining = ScriptedMining((H1, 1), [], then=(H1, 1))  # the tip stands (timeouts)
    said_shutdown, emitted = follow(mining, stop_after_s=0.05)
    assert said_shutdown is False
    assert emitted == [H1]


# ------------------------------------------------------------------------------------
# The emulated node, held to the real node's answers.
# ------------------------------------------------------------------------------------


def test_emulated_node_answers_like_the_real_one_at_shutdown() -> None:
    with IpcNode() as node:
        node.start(IpcScenario(version="master", block_interval=0))
        schemas = load_schema_set("master")
        answers = run(lambda: mining_answers_at_shutdown(node.socket, schemas, node.stop))
    check_shutdown_answers(answers)


class StuckUtxoTrace(load_schema_set("proposed").require("tracing_utxo").UtxoCacheTrace.Server):  # type: ignore[misc]
    """A subscriber whose ``destroy`` takes long: the emulated node's shutdown waits up
    to its grace period for it, which keeps the node in the shutting-down state."""

    def __init__(self) -> None:
        self.destroying = asyncio.Event()

    async def destroy(self, context: Any, **_: Any) -> None:
        self.destroying.set()
        await asyncio.sleep(10)


def test_no_session_with_a_node_that_is_shutting_down(tmp_path: Path) -> None:
    """A node shutting down still accepts a connection but hands out a null Mining: the
    session must not open (the source then retries until a node is really there)."""
    schemas = load_schema_set("proposed")
    config = IpcSourceConfig(socket=tmp_path / "unused", subscribe=("tip",), poll_interval_s=0)
    with IpcNode() as node:
        node.start(IpcScenario(streams=("utxo",), wait_start=True, block_interval=0))

        async def go() -> BaseException | None:
            conn = await open_connection(node.socket, schemas)
            trace = StuckUtxoTrace()
            tracing = (await conn.init.makeUtxoTracing(conn.context)).result
            handler = (await tracing.traceUtxoCache(conn.context, trace)).result
            os.kill(node.pid, signal.SIGTERM)
            await asyncio.wait_for(trace.destroying.wait(), 10)  # the node is shutting down
            session = IpcSourceSession(config, node.socket)
            try:
                await asyncio.to_thread(session.connect)
            except IpcConnectError as error:
                return error
            finally:
                session.stop()
                del handler
            return None

        error = run(go)
        node.wait(timeout=30)
    assert error is not None, "a session was opened against a node that is shutting down"
    assert "is shutting down (Init.makeMining returned no Mining)" in str(error)


# ------------------------------------------------------------------------------------
# The bridge across a stop and a restart of the emulated node.
# ------------------------------------------------------------------------------------


@pytest.mark.kafka
def test_stop_and_restart_of_a_master_node(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A master node (tip only) stopped and started again on the same socket: the
    first session ends without a loss or a dead letter, exactly one new session
    follows the new node, and each interface master lacks is reported once."""
    caplog.set_level(logging.INFO, logger="bridge")
    socket = tmp_path / "node.sock"
    settings = ipc_settings(kafka_bootstrap, topic_prefix, socket, poll_interval_s=0)
    scenario = IpcScenario(version="master", block_interval=0.2)
    with running_ipc_bridge(settings, tmp_path) as bridge:
        with IpcNode() as first:
            first.start(scenario, socket=socket)
            one = bridge.wait_for("attached")["session_id"]
            bridge.wait_captured(one, [TIP_STREAM], 3)
            first.stop()
            bridge.wait_for("session_ended", session=one)
        with IpcNode() as second:
            second.start(scenario, socket=socket)
            two = bridge.wait_for("attached", session_not=one)["session_id"]
            bridge.wait_captured(two, [TIP_STREAM], 3)
    attached = [u["session_id"] for u in bridge.recorder.history if u["state"] == "attached"]
    assert attached == [one, two], "no session against the node that was shutting down"

    records = read_topics(kafka_bootstrap, topic_prefix)
    assert dead_letters(records) == []
    checked = verdicts(records)
    assert {c.key[1] for c in checked} == {one, two}
    assert all(c.ok for c in checked), checked
    for (_, stream), book in final_books(records).items():
        assert stream == TIP_STREAM
        assert book["lost"] == {"kernel": 0, "bridge": 0, "producer": 0, "node": 0}
        assert book["fired"] == book["acked"] >= 3

    messages = [r.getMessage() for r in caplog.records]
    skipped = sorted(m for m in messages if "does not offer" in m)
    assert skipped == [
        f"The node (master) does not offer {name!r} over IPC; skipping it."
        for name in ("chain", "net", "node", "utxo")
    ], "once per bridge process and node version, not once per session"
    assert len([m for m in messages if "it speaks master" in m]) == 2
    assert len([m for m in messages if "is shutting down" in m]) == 1
