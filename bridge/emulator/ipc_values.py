"""The values the emulated IPC node sends: edge-case tables and seeded random streams.

Each stream is a deterministic function of ``--values`` and ``--seed``. ``edge`` cycles
through the bounds a decoder must survive (the same tables as the USDT emulator's
``usdt_node.c``, so both sources are tested against the same extremes); ``random``
draws plausible traffic. Nothing here touches pycapnp: an event is a method name plus
its parameters as plain Python values (nested dicts for structs), which
:mod:`bridge.emulator.ipc_runtime` copies into a request.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from bridge.emulator.ipc_bitcoin import MAX_MONEY

__all__ = [
    "PING_CONN_TYPE",
    "PING_PEER_ADDR",
    "PING_PEER_ID",
    "BadText",
    "CallEvent",
    "NetEvent",
    "NetGen",
    "UtxoGen",
    "jsonable",
    "ping_event",
    "splitmix",
]

# ---- edge tables (mirroring usdt_node.c) ----------------------------------------------
EDGE_PEER_ID: Final = (0, 1, -1, -(2**63), 2**63 - 1, 42)
EDGE_U32: Final = (0, 1, 2**31 - 1, 2**32 - 1)
EDGE_I64: Final = (0, 1, -1, -(2**63), 2**63 - 1, MAX_MONEY)
# Straddles every power-of-two boundary a size-classed buffer might use; the last is
# Bitcoin Core's MAX_PROTOCOL_MESSAGE_LENGTH.
EDGE_PAYLOAD_SIZE: Final = (0, 1, 7, 8, 255, 256, 257, 4095, 4096, 4097, 4_000_000)
# ConnectionTypeAsString() values, plus one unknown of 21 chars (documented max 20).
CONN_TYPES: Final = (
    "inbound",
    "manual",
    "feeler",
    "outbound-full-relay",
    "block-relay-only",
    "addr-fetch",
    "private-broadcast",
    "unknown-conn-type-21c",
)
N_REAL_CONN_TYPES: Final = 7
REAL_MSG_TYPES: Final = (
    "version", "verack", "addr", "addrv2", "inv", "getdata", "merkleblock", "getblocks",
    "getheaders", "tx", "headers", "block", "getaddr", "mempool", "ping", "pong",
    "notfound", "feefilter", "sendcmpct", "cmpctblock", "getblocktxn", "blocktxn",
    "wtxidrelay", "sendaddrv2", "sendheaders", "getcfcheckpt",
)  # fmt: skip
_FILLER_CHARS: Final = "abcdefghijklmnopqrstuvwxyz234567"


def _fill(length: int, prefix: str, suffix: str) -> str:
    if len(prefix) + len(suffix) > length:
        prefix = suffix = ""
    body = "".join(_FILLER_CHARS[(i * 7) % len(_FILLER_CHARS)] for i in range(length))
    return prefix + body[len(prefix) : length - len(suffix)] + suffix


# Addresses of lengths 12, 0, 1, 67, 68, 69, 100, 18 and 15 (normal max 68: a Tor v3
# host plus ":port"; hosts added by name can be longer).
EDGE_ADDR: Final = (
    "1.2.3.4:8333",
    "",
    "x",
    _fill(67, "", ".onion:8333"),
    _fill(68, "", ".onion:18333"),
    _fill(69, "seed-", ".example.com:8333"),
    _fill(100, "very-long-host-", ".example.org:8333"),
    "[2001:db8::1]:8333",
    "127.0.0.1:18444",
)
# Message types of lengths 1..21 (4 twice: ping and pong); 12 is the P2P header's max.
EDGE_MSG_TYPE: Final = (
    "x", "tx", "inv", "ping", "pong", "block", "verack", "version", "notfound",
    "feefilter", "getheaders", "getblocktxn", "getcfcheckpt",
    *(_fill(n, "unknownmsg", "") for n in range(13, 22)),
)  # fmt: skip
# Invalid UTF-8 for --malformed, each rejected by a strict decoder for its own reason.
MALFORMED_TEXT: Final = (
    b"bad\xff\xfename",
    b"euro-cut-\xe2\x82",
    b"surrogate-\xed\xa0\x80",
    b"overlong-\xc0\xaf",
)

# The flooding peer of ping mode: an inbound v1 connection on regtest.
PING_PEER_ID: Final = 0
PING_PEER_ADDR: Final = "127.0.0.1:50412"
PING_CONN_TYPE: Final = "inbound"


class BadText(bytes):
    """Bytes meant for a Text field that are not valid UTF-8 (--malformed)."""


@functools.cache
def _filler() -> bytes:
    """4,000,000 bytes of a fixed pattern: every payload is a prefix of it, stamped."""
    return bytes(range(256)) * (4_000_000 // 256 + 1)


def splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def jsonable(value: Any) -> Any:
    """A value as the record writes it: bytes as hex, BadText as {"hex": ...}."""
    if isinstance(value, BadText):
        return {"hex": bytes(value).hex()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One callback call: method name and parameters (capnp names; dicts for structs).

    ``extra`` goes into the record only (e.g. the emulator's txid of a transaction).
    """

    method: str
    params: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    malformed: bool = False

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, **jsonable(self.params)}
        out.update(jsonable(self.extra))
        if self.malformed:
            out["malformed"] = True
        return out


# ---- utxo ----------------------------------------------------------------------------


class UtxoGen:
    """UtxoCacheTrace events: coins are added, later spent or uncached (same values)."""

    def __init__(self, values: str, seed: int) -> None:
        self._edge = values == "edge"
        self._rng = random.Random(seed ^ 0x5554584F)  # noqa: S311 (seeded test data)
        self._seed = seed
        self._i = 0
        self._coins: list[dict[str, Any]] = []

    def _coin(self, k: int) -> dict[str, Any]:
        h = hashlib.sha256(
            b"tracebridge-utxo" + self._seed.to_bytes(8, "little") + k.to_bytes(8, "little")
        ).digest()
        if self._edge:
            return {
                "outpointHash": h,
                "outpointN": EDGE_U32[k % len(EDGE_U32)],
                "height": EDGE_U32[(k // 2) % len(EDGE_U32)],
                "value": EDGE_I64[k % len(EDGE_I64)],
                "isCoinbase": k % 3 == 0,
            }
        r = self._rng
        return {
            "outpointHash": h,
            "outpointN": r.choice((0, 0, 1, r.randrange(0, 3000))),
            "height": r.randrange(0, 900_000),
            "value": r.choice((546, 10_000, r.randrange(0, 100 * 10**8))),
            "isCoinbase": r.random() < 0.05,
        }

    def next(self) -> CallEvent:
        """add, add, spend, uncache in edge mode; add/spend/uncache drawn in random mode."""
        i = self._i
        self._i += 1
        if self._edge:
            step, k = i % 4, (i // 4) * 2
            if step < 2:
                return CallEvent("add", {"utxoInfo": self._coin(k + step)})
            return CallEvent(
                "spend" if step == 2 else "uncache", {"utxoInfo": self._coin(k + step - 2)}
            )
        r = self._rng.random()
        if self._coins and r < 0.35:
            return CallEvent(
                "spend", {"utxoInfo": self._coins.pop(self._rng.randrange(len(self._coins)))}
            )
        if self._coins and r < 0.5:
            return CallEvent("uncache", {"utxoInfo": self._coins.pop(0)})
        coin = self._coin(i)
        self._coins.append(coin)
        if len(self._coins) > 10_000:
            self._coins.pop(0)
        return CallEvent("add", {"utxoInfo": coin})

    def malformed(self) -> CallEvent:
        """An add whose outpointHash has 31 bytes, not 32."""
        coin = dict(self._coin(10**9))
        coin["outpointHash"] = coin["outpointHash"][:31]
        return CallEvent("add", {"utxoInfo": coin}, malformed=True)


# ---- net -----------------------------------------------------------------------------

Text: TypeAlias = str | BadText


@dataclass(frozen=True, slots=True)
class NetEvent:
    """One P2P message event; the payload is a stamped prefix of a fixed pattern."""

    inbound: bool
    peer_id: int
    peer_addr: Text
    conn_type: Text
    msg_type: Text
    msg_size: int
    stamp: bytes
    timestamp_us: int
    malformed: bool = False
    zero_fill: bool = False
    seq: int | None = None

    def payload(self, limit: int) -> bytes:
        """The first ``min(limit, msg_size)`` payload bytes (stamp, then pattern or zeros)."""
        n = min(limit, self.msg_size)
        if n <= len(self.stamp):
            return self.stamp[:n]
        if self.zero_fill:
            return self.stamp + bytes(n - len(self.stamp))
        return self.stamp + _filler()[len(self.stamp) : n]

    def fields(self, max_payload: int) -> dict[str, Any]:
        """NetMessage fields as the node sends them to a subscriber."""
        return {
            "inbound": self.inbound,
            "peerId": self.peer_id,
            "peerAddr": self.peer_addr,
            "connType": self.conn_type,
            "msgType": self.msg_type,
            "msgSize": self.msg_size,
            "payload": self.payload(max_payload),
            "timestampUs": self.timestamp_us,
        }


class NetGen:
    """P2P message events for the (non-ping) net stream."""

    def __init__(self, values: str, seed: int) -> None:
        self._edge = values == "edge"
        self._rng = random.Random(seed ^ 0x4E4554)  # noqa: S311 (seeded test data)
        self._seed = seed
        self._i = 0

    def next(self, timestamp_us: int) -> NetEvent:
        i = self._i
        self._i += 1
        stamp = splitmix(self._seed * 0x100000001 + i).to_bytes(8, "little")
        if self._edge:
            return NetEvent(
                inbound=i % 2 == 0,
                peer_id=EDGE_PEER_ID[i % len(EDGE_PEER_ID)],
                peer_addr=EDGE_ADDR[i % len(EDGE_ADDR)],
                conn_type=CONN_TYPES[i % len(CONN_TYPES)],
                msg_type=EDGE_MSG_TYPE[i % len(EDGE_MSG_TYPE)],
                msg_size=EDGE_PAYLOAD_SIZE[i % len(EDGE_PAYLOAD_SIZE)],
                stamp=stamp,
                timestamp_us=timestamp_us,
            )
        r = self._rng
        roll = r.random()
        cap = 300 if roll < 0.7 else 4096 if roll < 0.99 else 1_000_000
        ip = f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        addr = f"{ip}:{r.randint(1024, 65535)}"
        return NetEvent(
            inbound=r.random() < 0.5,
            peer_id=r.randrange(0, 10_000),
            peer_addr=addr,
            conn_type=CONN_TYPES[r.randrange(N_REAL_CONN_TYPES)],
            msg_type=r.choice(REAL_MSG_TYPES),
            msg_size=r.randint(0, cap),
            stamp=stamp,
            timestamp_us=timestamp_us,
        )

    def malformed(self, timestamp_us: int, k: int = 0) -> NetEvent:
        """An inbound message whose msgType is not valid UTF-8."""
        return NetEvent(
            inbound=True,
            peer_id=7,
            peer_addr="1.2.3.4:8333",
            conn_type="inbound",
            msg_type=BadText(MALFORMED_TEXT[k % len(MALFORMED_TEXT)]),
            msg_size=8,
            stamp=bytes(8),
            timestamp_us=timestamp_us,
            malformed=True,
        )


def ping_event(seq: int, ping_size: int, timestamp_us: int) -> NetEvent:
    """Event ``seq`` of ping mode: even = inbound ping ``seq // 2``, odd = its pong.

    Both carry the nonce ``seq // 2`` (8 bytes little-endian) then zeros.
    """
    nonce = (seq // 2).to_bytes(8, "little")
    return NetEvent(
        inbound=seq % 2 == 0,
        peer_id=PING_PEER_ID,
        peer_addr=PING_PEER_ADDR,
        conn_type=PING_CONN_TYPE,
        msg_type="ping" if seq % 2 == 0 else "pong",
        msg_size=ping_size,
        stamp=nonce,
        timestamp_us=timestamp_us,
        zero_fill=True,
    )
