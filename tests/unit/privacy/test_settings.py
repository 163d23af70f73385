"""privacy.* settings: what is refused, with which message, and what the encoder gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.codec.native import Encoder
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.privacy.apply import configure_encoder, redaction_of
from bridge.privacy.reference import Mode, Redaction
from bridge.privacy.settings import read_key

KEY = b"a-sixteen-byte-key-and-more"


def key_file(tmp_path: Path, content: bytes = KEY + b"\n") -> Path:
    path = tmp_path / "peer.key"
    path.write_bytes(content)
    return path


def test_off_by_default() -> None:
    settings = load_settings(None, {})
    assert settings.privacy.peer_addr == "none"
    encoder = Encoder()
    configure_encoder(encoder, redaction_of(settings.privacy))
    assert encoder.redaction_mode() == Mode.NONE


def test_hash_from_a_config_file_reaches_the_encoder(tmp_path: Path) -> None:
    config = tmp_path / "tracebridge.toml"
    config.write_text(
        f'[privacy]\npeer_addr = "hash"\nkey_file = "{key_file(tmp_path)}"\nkeep_port = true\n'
    )
    settings = load_settings(config)
    encoder = Encoder()
    configure_encoder(encoder, redaction_of(settings.privacy))
    assert encoder.redaction_mode() == Mode.HASH
    # One trailing newline is not part of the key.
    expected = Redaction(Mode.HASH, KEY, keep_port=True).address("203.0.113.9:8333")
    assert encoder.redact_address("203.0.113.9:8333") == expected
    assert expected.endswith(":8333")


def test_truncate_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEBRIDGE_PRIVACY__PEER_ADDR", "truncate")
    monkeypatch.setenv("TRACEBRIDGE_PRIVACY__IPV4_PREFIX_BITS", "16")
    settings = load_settings(None, {})
    encoder = Encoder()
    configure_encoder(encoder, redaction_of(settings.privacy))
    assert encoder.redact_address("203.0.113.9:8333") == "203.0.0.0/16"


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"peer_addr": "hash"}, "privacy: Value error, peer_addr 'hash' needs key_file"),
        ({"peer_addr": "truncate", "key_file": "KEY"}, "key_file set but peer_addr is 'truncate'"),
        ({"peer_addr": "hash", "key_file": "SHORT"}, "holds 15 bytes; a key needs at least 16"),
        ({"peer_addr": "hash", "key_file": "MISSING"}, "cannot read"),
        ({"peer_addr": "blur"}, "privacy.peer_addr: Input should be 'none', 'hash' or 'truncate'"),
        ({"ipv4_prefix_bits": 33}, "privacy.ipv4_prefix_bits: Input should be less than or equal"),
        ({"ipv6_prefix_bits": -1}, "privacy.ipv6_prefix_bits: Input should be greater than or"),
        ({"salt": "x"}, "privacy.salt: Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_one_clear_error(
    tmp_path: Path, privacy: dict[str, object], message: str
) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 15 + b"\n")
    files = {"KEY": key_file(tmp_path), "SHORT": short, "MISSING": tmp_path / "absent.key"}
    resolved = {
        k: str(files[v]) if isinstance(v, str) and v in files else v for k, v in privacy.items()
    }
    with pytest.raises(ConfigError) as error:
        load_settings(None, {"privacy": resolved})
    assert message in str(error.value)


def test_read_key_strips_one_newline_only(tmp_path: Path) -> None:
    assert read_key(key_file(tmp_path, KEY + b"\n\n")) == KEY + b"\n"
    assert read_key(key_file(tmp_path, KEY)) == KEY


def test_a_key_gone_by_the_time_the_bridge_starts_is_a_config_error(tmp_path: Path) -> None:
    path = key_file(tmp_path)
    settings = load_settings(None, {"privacy": {"peer_addr": "hash", "key_file": str(path)}})
    path.unlink()
    with pytest.raises(ConfigError, match=r"privacy\.key_file: cannot read .*peer\.key"):
        redaction_of(settings.privacy)
