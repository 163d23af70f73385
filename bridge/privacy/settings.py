"""``privacy.*``: whether and how peer addresses are redacted before records leave.

Lives here rather than in bridge/config.py so that everything about redaction is in one
package; BridgeSettings holds it as ``privacy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# A shorter key would let whoever guesses it test addresses against the hashes.
MIN_KEY_BYTES = 16


def read_key(path: Path) -> bytes:
    """The key file's bytes, without one trailing newline (``openssl rand -hex 32 >``
    writes one); ValueError saying what is wrong with it."""
    try:
        key = path.expanduser().read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    if key.endswith(b"\n"):
        key = key[:-1]
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"{path} holds {len(key)} bytes; a key needs at least {MIN_KEY_BYTES} "
            "(e.g. head -c 32 /dev/urandom > FILE)"
        )
    return key


class PrivacyConfig(BaseModel):
    """Peer-address redaction (honeynodes): applied by the encoder, before Kafka."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    peer_addr: Literal["none", "hash", "truncate"] = Field(
        "none",
        description="Peer addresses in records: 'none' keeps them; 'hash' writes "
        "hmac-sha256=<32 hex> (HMAC-SHA256 of the host under key_file); 'truncate' writes "
        "the network (a.b.c.0/24, [2001:db8::]/48; onion, I2P, CJDNS and host names cut). "
        "Redacting also withholds version/addr/addrv2 payloads, banned subnets and dead "
        "letters' raw bytes, which carry addresses too.",
    )
    key_file: Path | None = Field(
        None,
        description="Secret key of 'hash' (at least 16 bytes; one trailing newline is "
        "ignored). Whoever has it can test guesses against the hashes: keep it on the node.",
    )
    keep_port: bool = Field(
        False,
        description="Append ':port' to redacted addresses. Inbound ports are ephemeral and, "
        "next to a prefix, can single a peer out.",
    )
    ipv4_prefix_bits: int = Field(
        24, ge=0, le=32, description="Network bits 'truncate' keeps of an IPv4 address."
    )
    ipv6_prefix_bits: int = Field(
        48, ge=0, le=128, description="Network bits 'truncate' keeps of an IPv6 address."
    )

    @model_validator(mode="after")
    def _key(self) -> PrivacyConfig:
        if self.peer_addr == "hash":
            if self.key_file is None:
                raise ValueError("peer_addr 'hash' needs key_file")
            read_key(self.key_file)
        elif self.key_file is not None:
            raise ValueError(f"key_file set but peer_addr is {self.peer_addr!r}, not 'hash'")
        return self
