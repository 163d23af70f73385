"""Finding the librdkafka confluent-kafka loaded, and librdkafka's form of settings."""

from __future__ import annotations

from pathlib import Path

import confluent_kafka

from bridge.sinks.kafka import librdkafka
from bridge.sinks.kafka.producer import librdkafka_settings

SITE = "/v/site-packages"
MAPS = f"""\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1 /usr/bin/python3.11
7f1c2a000000-7f1c2a100000 r-xp 00000000 fd:01 2 {SITE}/confluent_kafka.libs/librdkafka-0cb94173.so.1
7f1c2b000000-7f1c2b001000 rw-p 00000000 00:00 0
7f1c2c000000-7f1c2c100000 r-xp 00000000 fd:01 3 {SITE}/confluent_kafka/cimpl.cpython-311.so
"""


def test_the_mapped_library_is_found_by_name() -> None:
    path = librdkafka.mapped_library(MAPS)
    assert path == Path("/v/site-packages/confluent_kafka.libs/librdkafka-0cb94173.so.1")


def test_no_mapped_library_is_none() -> None:
    assert librdkafka.mapped_library("7f1c2b000000-7f1c2b001000 rw-p 00000000 00:00 0\n") is None


def test_the_loaded_library_is_confluent_kafkas_own() -> None:
    assert librdkafka.load() == confluent_kafka.libversion()[0]


def test_settings_take_librdkafkas_spelling() -> None:
    settings = librdkafka_settings({"enable.idempotence": True, "linger.ms": 5, "acks": "all"})
    assert settings == [("enable.idempotence", "true"), ("linger.ms", "5"), ("acks", "all")]
