"""The emulated node's event streams: what plays the node's threads.

A synchronous stream (utxo, chain, node_notifications) calls each subscriber in turn
and awaits every reply before the next event, as Bitcoin Core's validation and
scheduler threads block in libmultiprocess's ``clientInvoke``. The net stream offers
events to per-subscriber queues, and one sender per subscriber drains its queue in
batches, one ``messages()`` call at a time (:mod:`bridge.emulator.ipc_net`).

Paced streams produce what is due each tick. Flat out (rate 0), a synchronous stream
sends the next event as soon as the last call returned, and the net stream keeps the
fastest subscriber's queue full: it never waits for events, and slower subscribers
drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.emulator.ipc_capnp import error_text, fill_builder
from bridge.emulator.ipc_net import PingBatchTemplate, PingRange, TemplateError
from bridge.emulator.ipc_scenario import StreamName
from bridge.emulator.ipc_values import CallEvent, NetEvent, NetGen, jsonable

if TYPE_CHECKING:
    from bridge.emulator.ipc_conn import StreamState, Subscription
    from bridge.emulator.ipc_runtime import Runtime

__all__ = ["Streams", "now_us"]

# Flat-out net generation per loop turn when nobody subscribes (bounds a turn's work).
IDLE_CHUNK = 4096
# Most non-ping net events generated in one loop turn.
NET_TURN_MAX = 1024
# Most ping events offered in one loop turn when flat out.
PING_TURN_MAX = 1 << 20


def now_us() -> int:
    """CLOCK_MONOTONIC microseconds, like steady_clock in the node."""
    return time.monotonic_ns() // 1000


class Streams:
    """The stream coroutines and net senders of one :class:`Runtime`."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.net_space = asyncio.Event()
        self.stages: list[dict[str, Any]] = []

    async def _pace(self, start: float, i: int, rate: float) -> None:
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await self.rt.sleep(delay)
        elif i % 64 == 63:
            await asyncio.sleep(0)  # flat out: let connections breathe

    async def sync_stream(
        self,
        stream: StreamName,
        next_event: Callable[[], CallEvent],
        malformed: Callable[[], CallEvent],
        realize: Callable[[CallEvent], CallEvent] | None = None,
    ) -> None:
        """Run one synchronous stream: each event to every subscriber, each call awaited.

        ``realize`` turns a scripted event into the call at the moment it is sent (the
        chain script connects its blocks then). For node_notifications an event goes
        only to the subscribers of its own ``handle*`` method.
        """
        st = self.rt.streams[stream]
        count, rate, duration = self.rt.limits(stream)
        start = time.monotonic()
        st.started = start
        i = 0
        while not self.rt.stop_event.is_set():
            if (count and i >= count) or (duration and time.monotonic() - start >= duration):
                break
            await self._pace(start, i, rate)
            if (
                self.rt.sc.malformed_after is not None
                and i == self.rt.sc.malformed_after
                and st.malformed == 0
            ):
                st.malformed += 1
                bad = malformed()
                for sub in self.rt.active(
                    stream, bad.method if stream == "node_notifications" else None
                ):
                    await self.rt.deliver(sub, bad, None)
            ev = next_event()
            if realize is not None:
                ev = realize(ev)
            st.generated += 1
            for sub in self.rt.active(
                stream, ev.method if stream == "node_notifications" else None
            ):
                await self.rt.deliver(sub, ev, i)
            i += 1
        st.ended = time.monotonic()
        st.done = True

    async def net_stream(self) -> None:
        """Generate P2P message events into the subscribers' queues, then let them drain."""
        st = self.rt.streams["net"]
        count, rate, duration = self.rt.limits("net")
        gen = NetGen(self.rt.sc.values, self.rt.sc.seed)
        start = time.monotonic()
        st.started = start
        while not self.rt.stop_event.is_set():
            elapsed = time.monotonic() - start
            if (count and st.generated >= count) or (duration and elapsed >= duration):
                break
            self._offer_malformed_once(st, gen)
            due = int(elapsed * rate) - st.generated if rate > 0 else self._flat_out_room(1)
            if count:
                due = min(due, count - st.generated)
            due = min(due, NET_TURN_MAX)
            if self.rt.sc.malformed_after is not None and st.malformed == 0:
                due = min(due, self.rt.sc.malformed_after - st.generated)
            for _ in range(max(due, 0)):
                ev = gen.next(now_us())
                self._offer_event(ev, st.generated)
                st.generated += 1
            await self._net_wait(rate, due)
        st.ended = time.monotonic()
        await self._drain("net")
        st.done = True

    def _flat_out_room(self, per_event: int) -> int:
        """Events that fill the emptiest queue (in stream events: a filtered subscriber
        sees every other one); IDLE_CHUNK when nobody listens."""
        subs = self.rt.active("net")
        if not subs:
            return IDLE_CHUNK
        best = 0
        for s in subs:
            assert s.queue is not None
            assert s.opts is not None
            factor = 1 if s.opts.inbound and s.opts.outbound else 2
            best = max(best, s.queue.room() * factor)
        return best * per_event

    async def _net_wait(self, rate: float, made: int) -> None:
        """Paced: sleep one tick. Flat out: yield, or wait until a sender made room."""
        if rate > 0:
            await self.rt.sleep(min(0.01, max(0.001, 1 / rate)))
        elif made <= 0:
            self.net_space.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.net_space.wait(), 0.05)
        else:
            await asyncio.sleep(0)

    def _offer_malformed_once(self, st: StreamState, gen: NetGen) -> None:
        """The scenario's one malformed net event, once ``malformed_after`` were made."""
        after = self.rt.sc.malformed_after
        if after is not None and st.generated >= after and st.malformed == 0:
            st.malformed += 1
            self._offer_event(gen.malformed(now_us()))

    def _offer_event(self, ev: NetEvent, seq: int | None = None) -> None:
        if seq is not None:
            ev = dataclasses.replace(ev, seq=seq)
        for sub in self.rt.active("net"):
            assert sub.queue is not None
            assert sub.opts is not None
            if not (sub.opts.inbound if ev.inbound else sub.opts.outbound):
                continue
            sub.offered += 1
            _, dropped = sub.queue.offer(ev)
            sub.dropped += dropped

    def _offer_pings(self, first: int, n: int, ts: int) -> None:
        for sub in self.rt.active("net"):
            assert sub.queue is not None
            assert sub.opts is not None
            if sub.opts.inbound and sub.opts.outbound:
                piece = PingRange(first, n, 1, ts)
            else:
                parity = 0 if sub.opts.inbound else 1
                if not (sub.opts.inbound or sub.opts.outbound):
                    continue
                off = (parity - first) % 2
                cnt = (n - off + 1) // 2
                if cnt <= 0:
                    continue
                piece = PingRange(first + off, cnt, 2, ts)
            sub.offered += piece.count
            _, dropped = sub.queue.offer(piece)
            sub.dropped += dropped

    async def ping_stream(self) -> None:
        """The ping benchmark: ping/pong pairs through the stages, with per-stage stats."""
        st = self.rt.streams["net"]
        start = time.monotonic()
        st.started = start
        gen = NetGen(self.rt.sc.values, self.rt.sc.seed)
        for stage in self.rt.sc.stages:
            if self.rt.stop_event.is_set():
                break
            snap = self._snapshot()
            s0 = time.monotonic()
            made0 = st.generated
            ev_rate = 2 * stage.rate
            while not self.rt.stop_event.is_set():
                elapsed = time.monotonic() - s0
                if elapsed >= stage.seconds:
                    break
                self._offer_malformed_once(st, gen)
                if ev_rate > 0:
                    due = int(elapsed * ev_rate) - (st.generated - made0)
                else:
                    due = min(self._flat_out_room(1), 1 << 20)
                if due > 0:
                    self._offer_pings(st.generated, due, now_us())
                    st.generated += due
                await self._net_wait(ev_rate, due)
            self.stages.append(
                self._stage_stats(
                    stage.rate, stage.seconds, snap, st.generated - made0, time.monotonic() - s0
                )
            )
        st.ended = time.monotonic()
        await self._drain("net")
        st.done = True

    def _snapshot(self) -> dict[str, float]:
        subs = [s for s in self.rt.subs.values() if s.stream == "net"]
        return {
            "sent": sum(s.sent for s in subs),
            "dropped": sum(s.dropped for s in subs),
            "batches": sum(s.batches for s in subs),
            "cpu": time.process_time(),
        }

    def _stage_stats(
        self, rate: float, seconds: float, before: dict[str, float], events: int, elapsed: float
    ) -> dict[str, Any]:
        now = self._snapshot()
        sent = int(now["sent"] - before["sent"])
        cpu = now["cpu"] - before["cpu"]
        return {
            "rate": rate,
            "seconds": seconds,
            "pings": events // 2,
            "events": events,
            "sent": sent,
            "dropped": int(now["dropped"] - before["dropped"]),
            "batches": int(now["batches"] - before["batches"]),
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "events_per_s": sent / elapsed if elapsed > 0 else 0.0,
            "cpu_us_per_event": cpu / sent * 1e6 if sent else None,
        }

    async def _drain(self, stream: StreamName) -> None:
        """Wait until every live subscriber of ``stream`` has an empty queue and is idle."""
        while not self.rt.stop_event.is_set():
            busy = [
                s
                for s in self.rt.active(stream)
                if (s.queue is not None and s.queue.events) or not s.idle.is_set()
            ]
            if not busy:
                return
            await asyncio.sleep(0.005)

    async def net_sender(self, sub: Subscription) -> None:
        """One subscriber's delivery loop: one batch at a time, as the prototype's thread."""
        q, o = sub.queue, sub.opts
        assert q is not None
        assert o is not None
        while sub.ended is None:
            if not q.events:
                await q.nonempty.wait()  # also set by unsubscribe, to wake us
                continue
            sub.idle.clear()
            pieces, n, nbytes = q.take(o.max_batch_events, o.max_batch_bytes, 0, 0)
            if n < o.max_batch_events and nbytes < o.max_batch_bytes and o.max_batch_wait_us > 0:
                await asyncio.sleep(o.max_batch_wait_us / 1e6)
                if sub.ended is not None:
                    sub.discarded += n
                    break
                more, n2, _ = q.take(o.max_batch_events, o.max_batch_bytes, n, nbytes)
                pieces += more
                n += n2
            self.net_space.set()
            dropped = q.dropped_since_batch
            q.dropped_since_batch = 0
            try:
                await self._send_batch(sub, pieces, n, dropped)
            except Exception as exc:
                sub.failed += n
                sub.error = error_text(exc)
                self.rt.record({"kind": "failed", "sub": sub.id, "error": sub.error, "events": n})
                sub.idle.set()
                self.rt.unsubscribe(sub.id, self.rt.failure_reason(sub))
                break
            sub.idle.set()
        sub.idle.set()
        sub.discarded += q.clear()

    async def _send_batch(self, sub: Subscription, pieces: list[Any], n: int, dropped: int) -> None:
        """One messages() call; ping ranges go through the prebuilt template."""
        o = sub.opts
        assert o is not None
        req = sub.callback.messages_request()
        req.context.thread = await self.rt.client_thread(sub)
        req.context.callbackThread = sub.node_thread
        if all(isinstance(p, PingRange) for p in pieces) and self._template(sub) is not None:
            template = sub.template
            assert template is not None
            with template.load(pieces) as params:
                req.messages = params.messages
        else:
            lst = req.init("messages", n)
            i = 0
            for piece in pieces:
                events = (
                    piece.events(self.rt.sc.ping_size) if isinstance(piece, PingRange) else (piece,)
                )
                for ev in events:
                    fill_builder(lst[i], ev.fields(o.max_payload_bytes))
                    i += 1
        req.dropped = dropped
        await req.send()
        sub.sent += n
        sub.batches += 1
        sub.calls += 1
        sub.dropped_reported += dropped
        if self.rt.recorder is not None:
            self._record_batch(sub, pieces, n, dropped)
        self.rt.count_sent(n)

    def _template(self, sub: Subscription) -> PingBatchTemplate | None:
        """The subscriber's ping template, built on first use (None: use the slow path)."""
        if sub.template is None and not sub.template_failed:
            import capnp

            assert sub.opts is not None
            try:
                sub.template = PingBatchTemplate(
                    self.rt.schemas.require("tracing_net"),
                    capnp,
                    sub.opts.max_batch_events,
                    self.rt.sc.ping_size,
                    sub.opts.max_payload_bytes,
                )
            except TemplateError:
                sub.template_failed = True
        return sub.template

    def _record_batch(self, sub: Subscription, pieces: list[Any], n: int, dropped: int) -> None:
        o = sub.opts
        assert o is not None
        self.rt.record(
            {"kind": "batch", "sub": sub.id, "batch": sub.batches, "count": n, "dropped": dropped}
        )
        for piece in pieces:
            if isinstance(piece, PingRange):
                items = [
                    (piece.first + k * piece.step, ev)
                    for k, ev in enumerate(piece.events(self.rt.sc.ping_size))
                ]
            else:
                items = [(piece.seq, piece)]
            for seq, ev in items:
                line = {
                    "kind": "event",
                    "stream": "net",
                    "sub": sub.id,
                    "batch": sub.batches,
                    "seq": seq,
                    "method": "messages",
                }
                line.update(jsonable(ev.fields(o.max_payload_bytes)))
                if ev.malformed:
                    line["malformed"] = True
                self.rt.record(line)
