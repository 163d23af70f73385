"""The redacted forms of a peer address, in Python: the specification of redact.c.

The native encoder redacts every record it writes (bridge/codec/redact.c); this module
says, in plain Python, what it must write, and tests/unit/privacy holds the two to the
same strings. It is not on any hot path.

* ``hash``: ``hmac-sha256=`` and the first 16 bytes (32 hex digits) of
  HMAC-SHA256(key, host). Keyed, so a reader without the key cannot test guesses
  (there are only 2**32 IPv4 hosts); the same host always gives the same value, so
  peers can still be counted and followed across connections and nodes sharing a key.
* ``truncate``: the network, ``a.b.c.0/24`` or ``[2001:db8:1::]/48`` (RFC 5952 text);
  CJDNS (fc00::/8, an address derived from a key) is cut to ``[fc00::]/8``; onion, I2P
  and host names (nothing to truncate) become ``*.onion``, ``*.i2p`` or ``*``.
* ``:port`` is kept only with ``keep_port``: inbound ports are ephemeral and, next to a
  prefix, can single a peer out.

The host is split from the port as Bitcoin Core writes ``m_addr_name``: ``[v6]:port``,
``host:port`` or a bare host (a string with two or more colons is a bare IPv6 address).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from enum import IntEnum

HASH_PREFIX = "hmac-sha256="
HASH_BYTES = 16


class Mode(IntEnum):
    """The native encoder's numbering (``enum redact_mode`` in native.h)."""

    NONE = 0
    HASH = 1
    TRUNCATE = 2


@dataclass(frozen=True)
class Redaction:
    mode: Mode
    key: bytes = b""
    keep_port: bool = False
    ipv4_bits: int = 24
    ipv6_bits: int = 48

    def address(self, address: str) -> str:
        """What an address field carries instead of ``address``."""
        if self.mode is Mode.NONE:
            return address
        host, port = split(address)
        if self.mode is Mode.HASH:
            mac = hmac.new(self.key, host.encode(), hashlib.sha256).digest()
            out = HASH_PREFIX + mac[:HASH_BYTES].hex()
        else:
            out = self._prefix(host)
        return f"{out}:{port}" if self.keep_port and port is not None else out

    def _prefix(self, host: str) -> str:
        v4 = _ipv4(host)
        if v4 is not None:
            net = ipaddress.IPv4Network((v4, self.ipv4_bits), strict=False)
            return f"{net.network_address}/{self.ipv4_bits}"
        v6 = _ipv6(host)
        if v6 is not None:
            bits = 8 if v6.packed[0] == 0xFC else self.ipv6_bits
            net6 = ipaddress.IPv6Network((v6, bits), strict=False)
            return f"[{compress(net6.network_address.packed)}]/{bits}"
        if host.endswith(".onion"):
            return "*.onion"
        if host.endswith(".i2p"):
            return "*.i2p"
        return "*"


def _is_port(text: str) -> bool:
    return 1 <= len(text) <= 5 and text.isascii() and text.isdigit()


def split(address: str) -> tuple[str, str | None]:
    """(host, port or None) of an m_addr_name; a malformed one is all host."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            return address, None
        rest = address[end + 1 :]
        if rest == "":
            return address[1:end], None
        if rest[0] == ":" and _is_port(rest[1:]):
            return address[1:end], rest[1:]
        return address, None
    if address.count(":") == 1:
        host, port = address.split(":")
        if _is_port(port):
            return host, port
    return address, None


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return None


def _ipv6(host: str) -> ipaddress.IPv6Address | None:
    if "%" in host:  # a scope id: not an address Bitcoin Core connects to
        return None
    try:
        return ipaddress.IPv6Address(host)
    except ValueError:
        return None


def compress(packed: bytes) -> str:
    """RFC 5952 text of 16 bytes: lowercase, no leading zeros, the first longest run of
    two or more zero groups as ``::`` (what ipaddress writes, minus its IPv4 forms)."""
    groups = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best, best_len, i = -1, 0, 0
    while i < 8:
        if groups[i]:
            i += 1
            continue
        j = i
        while j < 8 and not groups[j]:
            j += 1
        if j - i > best_len:
            best, best_len = i, j - i
        i = j
    text = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(text)
    return ":".join(text[:best]) + "::" + ":".join(text[best + best_len :])
