"""Which librdkafka the native producer drives: the very library confluent-kafka loaded.

The native producer (``_producer.c``) is compiled against rdkafka.h only and opens the
library at run time. Taking the one already mapped into this process, rather than a
system copy, means one librdkafka version serves every client of the bridge (admin,
consumers, producer), with the behaviour the tests pin.
"""

from __future__ import annotations

import functools
from pathlib import Path

import confluent_kafka

from bridge.errors import KafkaSetupError
from bridge.sinks.kafka import _producer


def mapped_library(maps: str) -> Path | None:
    """The librdkafka shared object named in a ``/proc/<pid>/maps`` text, if any."""
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and Path(fields[5]).name.startswith("librdkafka"):
            return Path(fields[5])
    return None


@functools.cache
def load() -> str:
    """Open confluent-kafka's librdkafka for the native producer (once); its version."""
    path = mapped_library(Path("/proc/self/maps").read_text())
    if path is None:
        raise KafkaSetupError(
            "confluent-kafka's librdkafka is not mapped into this process "
            f"(confluent-kafka {confluent_kafka.version()[0]}): cannot start the producer"
        )
    try:
        version = _producer.load_library(str(path))
    except RuntimeError as error:
        raise KafkaSetupError(f"Cannot use librdkafka for the producer: {error}") from None
    expected = confluent_kafka.libversion()[0]
    if version != expected:
        raise KafkaSetupError(
            f"{path} is librdkafka {version}, but confluent-kafka uses {expected}"
        )
    return version
