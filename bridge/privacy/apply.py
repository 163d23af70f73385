"""Redaction wired into the bridge: the encoder's settings, and the few records that
Python writes itself.

The native encoder redacts every address field of the records it writes (USDT, IPC
NetMessage batches) and withholds the payloads of message types that carry addresses.
What it does not write is handled here: IPC snapshots encoded in Python (a peer's
``addr``, a banned subnet) and dead letters, whose raw bytes are what the node sent and
so may hold any address: with redaction on they keep no raw bytes at all (the reason
still says what was wrong).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.codec import _native
from bridge.errors import ConfigError
from bridge.events.spec import FieldSpec, Kind
from bridge.privacy.reference import Mode, Redaction
from bridge.privacy.settings import PrivacyConfig, read_key

# P2P messages whose payload holds addresses: version (addr_recv, addr_from), addr and
# addrv2 (up to 1,000 each). Their payloads are withheld; msg_size and msg_truncated
# still say how large they were.
ADDRESS_MESSAGE_TYPES = ("version", "addr", "addrv2")
# The field whose value says a payload's message type.
MESSAGE_TYPE_FIELD = "msg_type"

_MODES = {"none": Mode.NONE, "hash": Mode.HASH, "truncate": Mode.TRUNCATE}


def redaction_of(config: PrivacyConfig) -> Redaction:
    """The configured redaction, its key read now (once per bridge, not per session):
    ConfigError if the key file cannot be used any more."""
    key = b""
    if config.key_file is not None:
        try:
            key = read_key(config.key_file)
        except ValueError as error:
            raise ConfigError(f"privacy.key_file: {error}") from None
    return Redaction(
        _MODES[config.peer_addr],
        key,
        config.keep_port,
        config.ipv4_prefix_bits,
        config.ipv6_prefix_bits,
    )


def configure_encoder(encoder: _native.Encoder, redaction: Redaction) -> None:
    """Turn the encoder's redaction on (before it encodes any record)."""
    if redaction.mode is Mode.NONE:
        return
    encoder.set_redaction(
        int(redaction.mode),
        redaction.key,
        redaction.keep_port,
        redaction.ipv4_bits,
        redaction.ipv6_bits,
        ADDRESS_MESSAGE_TYPES,
    )


def redacting(encoder: _native.Encoder) -> bool:
    """Whether this session's encoder redacts (asked of the encoder, which each session
    builds afresh, so nothing can disagree with what it writes)."""
    return encoder.redaction_mode() != Mode.NONE


def redact_values(
    encoder: _native.Encoder, fields: Sequence[FieldSpec], values: Mapping[str, Any]
) -> dict[str, Any]:
    """``values`` with every address field redacted, nested lists included. Text goes
    through the encoder's own redaction; Data (a serialized subnet) has no text form to
    cut, so it is withheld (empty)."""
    out = dict(values)
    for spec in fields:
        if spec.name not in out:
            continue
        if spec.address:
            out[spec.name] = (
                b"" if spec.kind is Kind.DATA else encoder.redact_address(out[spec.name])
            )
        elif spec.kind is Kind.LIST and spec.items is not None and _has_address(spec.items.fields):
            out[spec.name] = [
                redact_values(encoder, spec.items.fields, item) for item in out[spec.name]
            ]
    return out


def _has_address(fields: Sequence[FieldSpec]) -> bool:
    return any(
        spec.address or (spec.items is not None and _has_address(spec.items.fields))
        for spec in fields
    )
