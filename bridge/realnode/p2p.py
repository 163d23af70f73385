"""A minimal Bitcoin P2P (v1 transport) peer for the ping flood of RFC #35142.

Only what the benchmark needs: connect to a regtest node on loopback, do the
version/verack handshake, then send ``ping`` messages (8-byte nonces) at a paced rate
and read the ``pong`` replies, timing each round trip. It answers the node's own pings
(the node would otherwise count us as unresponsive) and ignores every other message
(``sendcmpct``, ``feefilter``, ...), counting them, because each one the node sends or
receives is a ``net:*_message`` event the tracers see too.

Two rules keep the node honest while it is flooded:

* Replies are read whenever they are readable, and at most ``window`` pings are ever
  unanswered (32 bytes each), so the node's send buffer (``-maxsendbuffer``, 1,000 kB)
  can never fill and make it stop processing our messages: what is measured is the
  node's processing, not TCP backpressure.
* Every ping is prepared in advance: a ring of ``POOL`` ready-made messages, one per
  nonce slot, so the flood costs the client one ``send`` per batch rather than a
  double SHA-256 and a header per ping; a pong's nonce names its slot, hence its send
  time.

Wire format (Bitcoin Core ``src/protocol.h``): a 24-byte header (4-byte network magic,
12-byte NUL-padded message type, little-endian payload length, first 4 bytes of
SHA256(SHA256(payload))), then the payload. A node that offers BIP324 (v2) still
serves an inbound peer that starts with v1 bytes.
"""

from __future__ import annotations

import hashlib
import random
import select
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

REGTEST_MAGIC = bytes.fromhex("fabfb5da")
# 70016 is what the RFC's flooder announces (wtxidrelay era); the node speaks 70017 and
# answers pings with pongs for any version above BIP0031_VERSION (60000).
PROTOCOL_VERSION = 70016
HEADER = struct.Struct("<4s12sI4s")
HEADER_SIZE = HEADER.size  # 24
PING_SIZE = HEADER_SIZE + 8
# Nonce slots: a power of two above any sensible window, so slot = nonce & (POOL - 1).
POOL = 1 << 16
# Unanswered pings at most: 1,000 x 32 B of pongs is 3% of -maxsendbuffer.
DEFAULT_WINDOW = 1000
# Bytes read per recv(): ~2,000 pongs, a few ms of replies at the fastest rates.
RECV_BYTES = 1 << 16
# How long the paced loop sleeps at most between checks: the pacing granularity.
TICK_S = 0.0005


class P2PError(ConnectionError):
    """The node closed the connection, timed out, or spoke something we cannot parse."""


def checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def message(msg_type: str, payload: bytes = b"", magic: bytes = REGTEST_MAGIC) -> bytes:
    """One v1 message: header, then payload."""
    return HEADER.pack(magic, msg_type.encode(), len(payload), checksum(payload)) + payload


def _net_addr(port: int) -> bytes:
    """A version message's address: services, IPv4-mapped 127.0.0.1, big-endian port."""
    ipv4_mapped = b"\0" * 10 + b"\xff\xff" + bytes([127, 0, 0, 1])
    return struct.pack("<Q", 0) + ipv4_mapped + struct.pack(">H", port)


def version_payload(port: int, user_agent: str = "/tracebridge-bench:0.1/") -> bytes:
    """``version`` with no services (so the node never asks us for headers or blocks) and
    relay off (so it sends us no transaction announcements): pings are all it gets."""
    agent = user_agent.encode()
    return (
        struct.pack("<iQq", PROTOCOL_VERSION, 0, int(time.time()))
        + _net_addr(port)
        + _net_addr(0)
        + struct.pack("<Q", random.getrandbits(64))
        + bytes([len(agent)])
        + agent
        + struct.pack("<i?", 0, False)
    )


@dataclass
class FloodResult:
    """One flood stage, from the client's side."""

    offered_pps: float  # pings/s asked for (0 = flat out)
    pings: int
    pongs: int
    elapsed_s: float  # first ping sent .. last pong received
    rtt_ns: list[int] = field(repr=False)

    @property
    def pings_per_s(self) -> float:
        return self.pongs / self.elapsed_s if self.elapsed_s else 0.0

    def rtt_percentile_ms(self, q: float) -> float | None:
        """Nearest-rank percentile of the round trips, in ms (None without any)."""
        if not self.rtt_ns:
            return None
        ordered = sorted(self.rtt_ns)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] / 1e6


class PingPeer:
    """One inbound connection to a node. Use as a context manager.

    ``sent`` and ``received`` count every message by type, flood pings and pongs
    included, so that the messages the node saw from us and sent to us (= the
    ``net:inbound_message`` and ``net:outbound_message`` events) are known exactly.
    """

    def __init__(
        self, port: int, *, host: str = "127.0.0.1", magic: bytes = REGTEST_MAGIC,
        window: int = DEFAULT_WINDOW,
    ) -> None:  # fmt: skip
        if not 0 < window <= POOL:
            raise ValueError(f"window must be in 1..{POOL}")
        self.port = port
        self.host = host
        self.magic = magic
        self.window = window
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self._sock: socket.socket | None = None
        self._inbox = bytearray()
        self._outbox = bytearray()
        salt = random.getrandbits(32) << 32
        self._pool = b"".join(
            message("ping", struct.pack("<Q", salt | slot), magic) for slot in range(POOL)
        )
        self._sent_ns = [0] * POOL
        self._next = 0  # flood pings sent so far; slot = _next % POOL
        self._answered = 0
        self._rtt: list[int] = []

    # ------------------------------------------------------------------ connection
    def connect(self, timeout_s: float = 30.0) -> None:
        """Connect and complete the handshake (the node's version and verack, ours)."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._sock = sock
        self._queue("version", version_payload(self.port))
        deadline = time.monotonic() + timeout_s
        verack_sent = False
        while not (verack_sent and self.received["verack"]):
            if not verack_sent and self.received["version"]:
                self._queue("verack")
                verack_sent = True
            if time.monotonic() > deadline:
                raise P2PError(f"no handshake with {self.host}:{self.port} in {timeout_s} s")
            self._exchange(0.05)
        self._flush_outbox(deadline)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> PingPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the flood
    def flood(self, rate_pps: float, seconds: float, timeout_s: float = 60.0) -> FloodResult:
        """Send pings at ``rate_pps`` (0: as fast as the window allows) for ``seconds``,
        then wait for every pong. Pings go out in batches: each pass sends what the
        schedule owes, so the rate holds even when a pass is late."""
        first = self._next
        answered_before = self._answered
        self._rtt = []
        start = time.monotonic()
        stop_at = start + seconds
        deadline = stop_at + timeout_s
        last_pong = start
        while True:
            now = time.monotonic()
            sending = now < stop_at
            in_flight = self._next - self._answered
            if not sending and in_flight == 0:
                break
            if now > deadline:
                raise P2PError(f"{in_flight} pings unanswered {timeout_s:.0f} s after the flood")
            if sending and not self._outbox:
                owed = (
                    int(rate_pps * (now - start)) + 1 - (self._next - first)
                    if rate_pps > 0
                    else self.window
                )
                self._queue_pings(min(owed, self.window - in_flight))
            before = self._answered
            self._exchange(TICK_S if sending else 0.05)
            if self._answered != before:
                last_pong = time.monotonic()
        return FloodResult(
            offered_pps=rate_pps,
            pings=self._next - first,
            pongs=self._answered - answered_before,
            elapsed_s=last_pong - start,
            rtt_ns=self._rtt,
        )

    def settle(self, seconds: float) -> None:
        """Keep reading (and answering the node's pings) for ``seconds``: what the node
        sends after a flood is counted in ``received`` before the connection closes."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._exchange(min(left, 0.05))

    def _queue_pings(self, count: int) -> None:
        if count <= 0:
            return
        begin = self._next % POOL
        end = begin + count
        now = time.monotonic_ns()
        if end <= POOL:
            self._outbox += self._pool[begin * PING_SIZE : end * PING_SIZE]
            self._sent_ns[begin:end] = [now] * count
        else:
            self._outbox += self._pool[begin * PING_SIZE :]
            self._outbox += self._pool[: (end - POOL) * PING_SIZE]
            self._sent_ns[begin:] = [now] * (POOL - begin)
            self._sent_ns[: end - POOL] = [now] * (end - POOL)
        self._next += count
        self.sent["ping"] += count

    # ------------------------------------------------------------------ I/O
    def _queue(self, msg_type: str, payload: bytes = b"") -> None:
        self._outbox += message(msg_type, payload, self.magic)
        self.sent[msg_type] += 1

    def _flush_outbox(self, deadline: float) -> None:
        while self._outbox:
            if time.monotonic() > deadline:
                raise P2PError("the node stopped reading from us")
            self._exchange(0.05)

    def _exchange(self, wait_s: float) -> None:
        """One pass: wait up to ``wait_s`` for the socket, write what is queued, read and
        handle what arrived."""
        sock = self._sock
        if sock is None:
            raise P2PError("not connected")
        readable, writable, _ = select.select([sock], [sock] if self._outbox else [], [], wait_s)
        if writable:
            try:
                written = sock.send(self._outbox)
            except BlockingIOError:
                written = 0
            except OSError as error:
                raise P2PError(f"send failed: {error}") from None
            del self._outbox[:written]
        if readable:
            try:
                data = sock.recv(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                raise P2PError(f"recv failed: {error}") from None
            if not data:
                raise P2PError(f"{self.host}:{self.port} closed the connection")
            self._inbox += data
            self._handle(time.monotonic_ns())

    def _handle(self, now_ns: int) -> None:
        inbox = self._inbox
        pos = 0
        end = len(inbox)
        sent_ns = self._sent_ns
        rtt = self._rtt
        pongs = 0
        while end - pos >= HEADER_SIZE:
            magic, raw_type, length, _ = HEADER.unpack_from(inbox, pos)
            if magic != self.magic:
                raise P2PError(f"bad magic {magic.hex()} from the node")
            if end - pos - HEADER_SIZE < length:
                break
            body = pos + HEADER_SIZE
            if raw_type == b"pong\0\0\0\0\0\0\0\0" and length == 8:
                (nonce,) = struct.unpack_from("<Q", inbox, body)
                rtt.append(now_ns - sent_ns[nonce & (POOL - 1)])
                pongs += 1
            else:
                msg_type = raw_type.rstrip(b"\0").decode(errors="replace")
                self.received[msg_type] += 1
                if msg_type == "ping":
                    self._queue("pong", bytes(inbox[body : body + length]))
            pos = body + length
        del inbox[:pos]
        self._answered += pongs
        self.received["pong"] += pongs

    @property
    def messages_exchanged(self) -> int:
        """Every message sent plus every message received: the events the node fires
        for this connection, once the node has processed all we sent."""
        return sum(self.sent.values()) + sum(self.received.values())
