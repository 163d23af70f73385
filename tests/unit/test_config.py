"""Configuration: file < environment < flags, strict keys, and errors that name the field."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bridge.config import DEFAULT_RING_KIB, BridgeSettings, load_settings
from bridge.errors import ConfigError

SUBSYSTEM_NAMES = {"net", "validation", "utxocache", "mempool", "coin_selection"}


def write(tmp_path: Path, text: str, name: str = "bridge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(
    config_file: Path | None = None, overrides: dict[str, object] | None = None
) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file, overrides)
    return str(caught.value)


# ------------------------------------------------------------------ defaults


def test_defaults() -> None:
    settings = load_settings()
    assert settings.node_id == socket.gethostname()
    assert settings.source == "usdt"
    assert settings.usdt.tracepoints == ("*",)
    assert settings.usdt.pid is None
    assert settings.usdt.payload_capture_bytes == 512
    assert settings.usdt.ring_buffer_kib == DEFAULT_RING_KIB
    assert set(DEFAULT_RING_KIB) == SUBSYSTEM_NAMES
    assert settings.kafka.bootstrap_servers is None
    assert settings.kafka.topic_prefix == "tracebridge"
    assert settings.heartbeat_interval_s == 5.0


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.node_id = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        settings.kafka.linger_ms = 1  # type: ignore[misc]


# ------------------------------------------------------------------ precedence


FILE = """
node_id = "from-file"
heartbeat_interval_s = 7
[usdt]
tracepoints = ["mempool", "validation"]
payload_capture_bytes = 100
[kafka]
linger_ms = 1
topic_prefix = "fileprefix"
"""


def test_file_alone(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FILE))
    assert settings.node_id == "from-file"
    assert settings.heartbeat_interval_s == 7
    assert settings.usdt.tracepoints == ("mempool", "validation")
    assert settings.usdt.payload_capture_bytes == 100
    assert settings.kafka.linger_ms == 1
    assert settings.kafka.topic_prefix == "fileprefix"


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEBRIDGE_NODE_ID", "from-env")
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__LINGER_MS", "2")
    monkeypatch.setenv("TRACEBRIDGE_USDT__TRACEPOINTS", '["net:*_message"]')
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__EVENT_HEADERS", "false")
    settings = load_settings(write(tmp_path, FILE))
    assert settings.node_id == "from-env"
    assert settings.kafka.linger_ms == 2
    assert settings.kafka.event_headers is False
    assert settings.usdt.tracepoints == ("net:*_message",)
    # Keys the environment does not set still come from the file (nested merge).
    assert settings.kafka.topic_prefix == "fileprefix"
    assert settings.usdt.payload_capture_bytes == 100


def test_overrides_beat_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEBRIDGE_NODE_ID", "from-env")
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__LINGER_MS", "2")
    overrides = {"node_id": "from-flag", "kafka": {"linger_ms": 3}, "usdt": {"pid": 42}}
    settings = load_settings(write(tmp_path, FILE), overrides)
    assert settings.node_id == "from-flag"
    assert settings.kafka.linger_ms == 3
    assert settings.usdt.pid == 42
    # A flag for one nested key leaves the file's other keys in that table alone.
    assert settings.kafka.topic_prefix == "fileprefix"
    assert settings.usdt.tracepoints == ("mempool", "validation")
    assert settings.usdt.payload_capture_bytes == 100


def test_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("TRACEBRIDGE_USDT__RING_BUFFER_KIB__NET", "1024")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.usdt.ring_buffer_kib == {**DEFAULT_RING_KIB, "net": 1024}


def test_the_file_does_not_stick_to_later_loads(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, FILE)).node_id == "from-file"
    assert load_settings().node_id == socket.gethostname()
    assert load_settings(write(tmp_path, FILE)).node_id == "from-file"
    assert BridgeSettings().node_id == socket.gethostname()  # built directly, no file
    config_error(write(tmp_path, "nope = 1\n", "bad.toml"))
    assert load_settings().node_id == socket.gethostname()


def test_the_cache_dir_variable_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRACEBRIDGE_CACHE_DIR shares the prefix (emulator and Kafka caches) and must not
    make every configuration invalid."""
    monkeypatch.setenv("TRACEBRIDGE_CACHE_DIR", "/tmp/somewhere")
    assert load_settings().node_id == socket.gethostname()


# ------------------------------------------------------------------ unknown keys


def test_unknown_top_level_key_in_file(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, 'nodeid = "x"\n'))
    assert "nodeid" in message
    assert "Extra inputs are not permitted" in message


def test_unknown_nested_key_in_file(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, '[kafka]\nbootstrap_server = "x:1"\n'))
    assert "kafka.bootstrap_server:" in message


def test_unknown_table_in_file(tmp_path: Path) -> None:
    assert "zmq:" in config_error(write(tmp_path, "[zmq]\nendpoint = 'x'\n"))


def test_unknown_nested_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEBRIDGE_KAFKA__LINGER", "5")
    assert "kafka.linger:" in config_error()


def test_unknown_key_in_overrides() -> None:
    assert "usdt.pids:" in config_error(overrides={"usdt": {"pids": 1}})


# ------------------------------------------------------------------ invalid values


def test_invalid_values_name_the_field(tmp_path: Path) -> None:
    assert "usdt.payload_capture_bytes:" in config_error(
        overrides={"usdt": {"payload_capture_bytes": -1}}
    )
    assert "usdt.payload_capture_bytes:" in config_error(
        overrides={"usdt": {"payload_capture_bytes": 2 * 1024 * 1024}}
    )
    assert "usdt.pid:" in config_error(overrides={"usdt": {"pid": 0}})
    assert "kafka.topic_prefix:" in config_error(overrides={"kafka": {"topic_prefix": "a b"}})
    assert "kafka.compression:" in config_error(overrides={"kafka": {"compression": "brotli"}})
    assert "usdt.wakeup:" in config_error(overrides={"usdt": {"wakeup": "always"}})
    assert "node_id:" in config_error(overrides={"node_id": ""})
    message = config_error(write(tmp_path, "[usdt]\npoll_interval_ms = 0\n"))
    assert "usdt.poll_interval_ms:" in message
    assert message.startswith("invalid configuration:")


def test_every_problem_is_listed() -> None:
    message = config_error(
        overrides={"usdt": {"pid": -1}, "kafka": {"partitions": 0}, "heartbeat_interval_s": 0}
    )
    assert "usdt.pid:" in message
    assert "kafka.partitions:" in message
    assert "heartbeat_interval_s:" in message


def test_largest_payload_capture_is_accepted() -> None:
    settings = load_settings(overrides={"usdt": {"payload_capture_bytes": 2 * 1024 * 1024 - 1}})
    assert settings.usdt.payload_capture_bytes == 2 * 1024 * 1024 - 1


# ------------------------------------------------------------------ ring sizes


def test_ring_sizes_merge_with_defaults() -> None:
    settings = load_settings(overrides={"usdt": {"ring_buffer_kib": {"mempool": 64}}})
    assert settings.usdt.ring_buffer_kib == {
        "net": 16384,
        "validation": 256,
        "utxocache": 8192,
        "mempool": 64,
        "coin_selection": 256,
    }


def test_ring_sizes_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[usdt.ring_buffer_kib]\nnet = 4\nutxocache = 65536\n")
    rings = load_settings(path).usdt.ring_buffer_kib
    assert rings["net"] == 4
    assert rings["utxocache"] == 65536
    assert rings["mempool"] == DEFAULT_RING_KIB["mempool"]


@pytest.mark.parametrize("kib", [0, 1, 2, 3, 5, 1000, 4097])
def test_ring_size_must_be_a_power_of_two_of_at_least_4(kib: int) -> None:
    message = config_error(overrides={"usdt": {"ring_buffer_kib": {"net": kib}}})
    assert "usdt.ring_buffer_kib:" in message
    assert f"net: {kib} KiB is not a power of two >= 4" in message


def test_ring_size_for_an_unknown_subsystem() -> None:
    message = config_error(overrides={"usdt": {"ring_buffer_kib": {"wallet": 64}}})
    assert "usdt.ring_buffer_kib:" in message
    assert "unknown subsystem 'wallet'" in message


# ------------------------------------------------------------------ node target


@pytest.mark.parametrize(
    ("usdt", "named"),
    [
        ({"pid": 1, "pidfile": "/run/b.pid"}, "pid, pidfile"),
        ({"pid": 1, "binary": "/usr/bin/bitcoind"}, "pid, binary"),
        ({"pidfile": "/run/b.pid", "binary": "/usr/bin/bitcoind"}, "pidfile, binary"),
        ({"pid": 1, "pidfile": "/p", "binary": "/b"}, "pid, pidfile, binary"),
    ],
)
def test_pid_pidfile_binary_are_exclusive(usdt: dict[str, object], named: str) -> None:
    message = config_error(overrides={"usdt": usdt})
    assert "usdt" in message
    assert f"set only one of pid, pidfile, binary (got {named})" in message


def test_exclusivity_spans_sources(tmp_path: Path) -> None:
    """A --pid flag on top of a file that names the pidfile is a conflict, not a choice."""
    path = write(tmp_path, '[usdt]\npidfile = "/run/bitcoind.pid"\n')
    message = config_error(path, {"usdt": {"pid": 5}})
    assert "(got pid, pidfile)" in message


@pytest.mark.parametrize("key", ["pid", "pidfile", "binary"])
def test_one_target_is_fine(key: str) -> None:
    value: object = 7 if key == "pid" else "/x"
    settings = load_settings(overrides={"usdt": {key: value}})
    assert getattr(settings.usdt, key) is not None


# ------------------------------------------------------------------ librdkafka


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("bootstrap.servers", "bootstrap_servers"),
        ("compression.type", "compression"),
        ("linger.ms", "linger_ms"),
        ("queue.buffering.max.messages", "queue_max_messages"),
        ("message.timeout.ms", "message_timeout_ms"),
        ("enable.idempotence", "(always on)"),
        ("acks", "(always all)"),
    ],
)
def test_librdkafka_keys_owned_by_typed_fields_are_refused(key: str, owner: str) -> None:
    message = config_error(overrides={"kafka": {"librdkafka": {key: "1"}}})
    assert "kafka" in message
    assert f"librdkafka.{key} conflicts with kafka.{owner}" in message


def test_other_librdkafka_keys_pass_through(tmp_path: Path) -> None:
    path = write(tmp_path, '[kafka.librdkafka]\n"security.protocol" = "SSL"\n')
    assert load_settings(path).kafka.librdkafka == {"security.protocol": "SSL"}


# ------------------------------------------------------------------ the file itself


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = config_error(missing)
    assert str(missing) in message
    assert "does not exist" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[kafka\nlinger_ms = \n")
    message = config_error(path)
    assert str(path) in message
    assert "is not valid TOML" in message


def test_directory_as_config_file_is_a_config_error(tmp_path: Path) -> None:
    assert str(tmp_path) in config_error(tmp_path)


def test_non_utf8_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('node_id = "caf\xe9"\n'.encode("latin-1"))
    assert str(path) in config_error(path)
