"""Wiring and lifecycle: source sessions → native encoder → Kafka, with the ledger.

One thread does everything on the hot path, in this order, every poll interval:
drain every ring (records arrive encoded), produce them, turn rejects into dead
letters, serve delivery reports. There is deliberately no queue between draining and
producing: the rings are the queue, sized in the config, and the kernel counts what
does not fit. A session ends when the node exits or the bridge is asked to stop; the
books are then closed in an order that makes them exact (see :meth:`Bridge._finish`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.codec import _native
from bridge.codec.registry import bridge_schema_topics, framing_by_name, register_schemas
from bridge.codec.single_object import SchemaStore, committed_schemas
from bridge.config import BridgeSettings
from bridge.events.avro_schema import event_schema, full_name
from bridge.ledger import SessionLedger, StreamLedger
from bridge.metrics.server import MetricsServer
from bridge.metrics.state import BridgeMetrics
from bridge.privacy import apply as privacy
from bridge.sinks.kafka.producer import Headers, KafkaSink, Route
from bridge.sinks.kafka.topics import (
    admin_client,
    all_topics,
    bridge_topic,
    check_reachable,
    dead_letter_topic,
    ensure_topics,
    event_topic,
)
from bridge.sources.base import Source, SourceSession
from bridge.status import StatusFile

log = logging.getLogger(__name__)

HEARTBEAT_SCHEMA = "tracebridge.bridge.Heartbeat"
DEAD_LETTER_SCHEMA = "tracebridge.bridge.DeadLetter"
# How long the end of a session may wait for Kafka to acknowledge what is queued before
# the rest is purged and counted as producer losses (so the final ledger is exact).
FINISH_FLUSH_S = 30.0
# Largest Avro record besides the payload: envelope (~150 B) + the biggest body with hex.
RECORD_OVERHEAD_BYTES = 4096


def wall_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, the tightest of a few samples."""
    best: tuple[int, int] | None = None
    for _ in range(5):
        before = time.monotonic_ns()
        wall = time.time_ns()
        after = time.monotonic_ns()
        if best is None or after - before < best[0]:
            best = (after - before, wall - (before + after) // 2)
    assert best is not None
    return best[1]


@dataclass
class SessionCpu:
    """Where a session's CPU went, in seconds, for the benchmarks: the bridge thread's
    drain (receive, decode, encode) and produce() calls, the thread in total, and the
    source's own thread (IPC's event loop: receiving and encoding). The rest of the
    process's CPU is librdkafka's threads."""

    drain_s: float = 0.0
    produce_s: float = 0.0
    main_thread_s: float = 0.0
    source_thread_s: float = 0.0


class Bridge:
    """Runs sessions from one source until stopped."""

    def __init__(
        self,
        settings: BridgeSettings,
        source: Source,
        *,
        stop: threading.Event | None = None,
        status_file: Path | None = None,
        on_books: Callable[[list[StreamLedger]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.stop = stop or threading.Event()
        self.status = StatusFile(status_file)
        self.on_books = on_books
        self.store: SchemaStore = committed_schemas()
        self.encoder = _native.Encoder()
        self.redaction = privacy.redaction_of(settings.privacy)  # privacy.*: key read once
        kafka = settings.kafka
        payload_cap = max(settings.usdt.payload_capture_bytes, settings.ipc.max_payload_bytes)
        self.message_max_bytes = max(1_000_000, payload_cap + RECORD_OVERHEAD_BYTES)
        self.sink = KafkaSink(kafka, settings.node_id.encode(), self.message_max_bytes)
        self.sessions_completed = 0
        self._sequence_of: dict[int, int] = {}  # record type -> the sequence counting it
        self._stream_of: dict[int, str] = {}  # sequence -> stream name
        self._last_books: dict[str, Any] = {}
        # Prometheus metrics (metrics.port): fed from the ledger, served while run() runs.
        self.metrics: BridgeMetrics | None = None
        self.metrics_server: MetricsServer | None = None
        if settings.metrics.port is not None:
            self.metrics = BridgeMetrics(
                settings.node_id,
                self.sink.in_flight,
                settings.source,
                bridge_records=lambda: (
                    self.sink.bridge_records_failed,
                    self.sink.bridge_records_skipped,
                ),
            )
            self.sink.latency = self.metrics.latency

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        """Check Kafka and create topics; raises KafkaSetupError with a clear message."""
        kafka = self.settings.kafka
        if kafka.create_topics:
            ensure_topics(kafka, all_topics(kafka.topic_prefix), self.message_max_bytes)
        else:
            check_reachable(admin_client(kafka), kafka)
        registry = self.settings.registry
        if registry.url:
            # Registry mode changes only the framing each schema's values start with;
            # every encoder path reads it from the store.
            registrations = register_schemas(
                registry, bridge_schema_topics(self.store, kafka.topic_prefix)
            )
            self.store = self.store.with_framing(framing_by_name(registrations))
            log.info("Registered %d schemas at %s.", len(registrations), registry.url)

    def run(self) -> None:
        """Attach, pump, close the books; again after every node restart."""
        try:
            if self.metrics is not None:
                self.metrics_server = MetricsServer(self.settings.metrics, self.metrics)
            self.prepare()
            self.status.update("waiting")
            while not self.stop.is_set():
                session = self.source.next_session(self.stop)
                if session is None:
                    break
                self._run_session(session)
                self.sessions_completed += 1
                if not self.source.reattach:
                    break
        except BaseException as error:
            # A supervisor reading the status file must see that the bridge died.
            self.status.update("failed", error=f"{type(error).__name__}: {error}")
            raise
        finally:
            self.source.close()
            self.sink.close()
            if self.metrics_server is not None:
                self.metrics_server.stop()
        self.status.update("stopped", sessions=self.sessions_completed, **self._last_books)

    # ------------------------------------------------------------------ one session
    def _run_session(self, session: SourceSession) -> None:
        settings = self.settings
        self._cpu = SessionCpu(main_thread_s=time.thread_time())
        self.encoder = _native.Encoder()  # a fresh table: each source lays out its own
        # The session's identity first: an IPC source starts emitting from its own
        # thread as soon as it is configured, and set_session resets every counter.
        self.encoder.set_session(
            settings.node_id, session.kind, session.session_id, wall_offset_ns()
        )
        privacy.configure_encoder(self.encoder, self.redaction)  # before any record
        session.configure(self.encoder, self.store)
        self._sequence_of = {
            tp_id: stream.sequence for stream in session.streams for tp_id in stream.record_types
        }
        self._stream_of = {stream.sequence: stream.name for stream in session.streams}
        self.sink.start_session(self._routes(session), self.encoder.add_loss)
        ledger = SessionLedger(
            node_id=settings.node_id,
            source=session.kind,
            session_id=session.session_id,
            streams=session.streams,
            encoder=self.encoder,
            sink=self.sink,
            source_counts=session.source_counts,
            node_pid=session.node_pid,
            node_endpoint=session.node_endpoint,
            attach_delay_ns=session.attach_delay_ns,
        )
        if self.metrics is not None:  # before the status says so: a scrape may follow it
            self.metrics.session_started(session.kind, session, session.attach_delay_ns)
        self.status.update(
            "attached",
            session_id=session.session_id,
            node_pid=session.node_pid,
            node_endpoint=session.node_endpoint,
            attach_delay_ns=session.attach_delay_ns,
            streams=[stream.name for stream in session.streams],
        )
        interval = self.source.poll_interval_s
        max_batch = self.source.max_batch
        next_heartbeat = time.monotonic() + settings.heartbeat_interval_s
        try:
            while not self.stop.is_set() and session.alive():
                session.wait(interval)
                self._pump(session, ledger, max_batch)
                if time.monotonic() >= next_heartbeat:
                    self.encoder.set_wall_offset(wall_offset_ns())  # follow clock slewing
                    self._heartbeat(ledger, final=False)
                    next_heartbeat = time.monotonic() + settings.heartbeat_interval_s
            self._finish(session, ledger, max_batch)
        finally:
            if self.metrics is not None:  # also when the session failed (idempotent)
                self.metrics.session_ended()
            session.close()

    def _finish(self, session: SourceSession, ledger: SessionLedger, max_batch: int) -> None:
        """Close the books exactly: stop capture, drain to the end, settle every record
        with Kafka (purging what it cannot take in time), then write SESSION_END.

        The source session is closed as soon as the last record is drained: settling
        with Kafka can take seconds (a broker that is down: minutes), and a node that
        restarted meanwhile must not wait for it to be traced again (the USDT source
        attaches its next process from then on)."""
        session.stop()
        while self._pump(session, ledger, max_batch):
            pass
        session.close()
        remaining = self.sink.flush(FINISH_FLUSH_S)
        if remaining:
            # What was never sent is purged (and counted); what was sent may still be
            # written by the broker, so wait for Kafka's verdict on it, which
            # message_timeout_ms bounds, before the books are declared final.
            settle_s = self.settings.kafka.message_timeout_ms / 1000 + 5
            log.error(
                "Kafka did not acknowledge %d records within %.0f s; purging the unsent "
                "ones (counted as producer losses) and waiting up to %.0f s for the rest.",
                remaining,
                FINISH_FLUSH_S,
                settle_s,
            )
            self.sink.purge()
            self.sink.flush(settle_s)
        books = self._heartbeat(ledger, final=True)
        if self.sink.flush(FINISH_FLUSH_S):
            log.error("The final ledger of session %s was not delivered.", session.session_id)
        self._cpu.main_thread_s = time.thread_time() - self._cpu.main_thread_s
        self._cpu.source_thread_s = session.source_thread_cpu_s
        self._last_books = {
            "session_id": session.session_id,
            "node_pid": session.node_pid,
            "books": [book.to_avro() for book in books],
            "cpu": dataclasses.asdict(self._cpu),
        }
        if self.metrics is not None:  # before the status says so: a scrape may follow it
            self.metrics.session_ended()
        self.status.update("session_ended", **self._last_books)
        log.info("Session %s ended: %s.", session.session_id, _summary(books))

    def _pump(self, session: SourceSession, ledger: SessionLedger, max_batch: int) -> int:
        started = time.thread_time()
        good, dead = session.drain(self.encoder, max_batch)
        drained = time.thread_time()
        self._cpu.drain_s += drained - started
        if good:
            produced = self.sink.produce_events(good)
            self._cpu.produce_s += time.thread_time() - drained
            if produced < len(good):
                # Bridge losses; and what the dropped records' lost_before reported is
                # reported again, or those losses would be in no record of the topic.
                self.encoder.unsent(good[produced:])
        for rejected in dead:
            self._dead_letter(session, ledger, rejected)
        if not good and not dead:
            self.sink.poll(0)
        return len(good) + len(dead)

    # ------------------------------------------------------------------ records of our own
    def _routes(self, session: SourceSession) -> dict[int, Route]:
        prefix = self.settings.kafka.topic_prefix
        source = session.kind.name.lower()
        with_headers = self.settings.kafka.event_headers
        return {
            spec.tp_id: Route(
                topic=event_topic(prefix, spec.subsystem),
                headers=self._headers(full_name(event_schema(spec)), source)
                if with_headers
                else None,
                sequence=self._sequence_of[spec.tp_id],
            )
            for spec in session.record_types
        }

    def _headers(self, schema: str, source: str) -> Headers:
        """The headers of a record of ``schema``: built once per route, not per record."""
        known = self.store.by_name(schema)
        return [
            ("stability", known.stability.encode()),
            ("schema_fp", known.fingerprint.hex().encode()),
            ("source", source.encode()),
            ("node", self.settings.node_id.encode()),
        ]

    def _heartbeat(self, ledger: SessionLedger, final: bool) -> list[StreamLedger]:
        record, books = ledger.heartbeat(final)
        value = self.store.encode(HEARTBEAT_SCHEMA, record)
        topic = bridge_topic(self.settings.kafka.topic_prefix)
        self.sink.produce_bridge_record(
            topic,
            value,
            self._headers(HEARTBEAT_SCHEMA, ledger.source.name.lower()),
            droppable=not final,
        )
        if self.metrics is not None:
            self.metrics.observe_books(ledger.source, ledger.session_id, books)
        if self.on_books is not None:
            try:
                self.on_books(books)
            except Exception:  # an observer must never cost the books their SESSION_END
                log.exception("The ledger observer failed; the bridge carries on.")
        return books

    def _dead_letter(
        self, session: SourceSession, ledger: SessionLedger, rejected: _native.Rejected
    ) -> None:
        tp_id, seq, raw, reason = rejected
        stream = self._stream_of.get(self._sequence_of.get(tp_id, -1))
        if stream is None:
            ledger.unattributed_dead_letters += 1
        record = {
            "node_id": self.settings.node_id,
            "source": session.kind.name,
            "session_id": session.session_id,
            "stream": stream,
            "seq": seq if seq >= 0 else None,
            "ts_wall_ns": time.time_ns(),
            "reason": reason,
            # What the node sent may hold any peer address: redaction keeps none of it.
            "raw": b"" if privacy.redacting(self.encoder) else raw,
        }
        value = self.store.encode(DEAD_LETTER_SCHEMA, record)
        topic = dead_letter_topic(self.settings.kafka.topic_prefix)
        self.sink.produce_bridge_record(
            topic, value, self._headers(DEAD_LETTER_SCHEMA, session.kind.name.lower())
        )
        log.warning("Dead letter for %s seq %s: %s.", stream or "unknown stream", seq, reason)


def _summary(books: list[StreamLedger]) -> str:
    fired = sum(b.fired for b in books)
    acked = sum(b.acked for b in books)
    lost = sum(sum(b.lost.values()) for b in books)
    in_doubt = sum(b.in_doubt for b in books)
    doubt = f", {in_doubt} in doubt (timed out after they were sent)" if in_doubt else ""
    return f"{fired} fired, {acked} delivered, {lost} lost{doubt} (bridge {__version__})"
