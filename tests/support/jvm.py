"""Run the JVM readers of deploy/jvm/ against the project's broker and registry (tests only).

``topic_dump`` runs ``TopicDump`` (Kafka's consumer + Avro, or Apicurio's deserializer) once
over a set of topics and returns what it printed; ``running_connect`` runs Kafka Connect
standalone with deploy/jvm/connect/'s two properties files, unchanged, giving them their
settings through the environment as docker-compose.yml does. Both use the one classpath
``bridge.jvmclients.jars`` builds into the cache, and Java 17 like the broker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.jvmclients.jars import CONNECT_DIR, ensure_libs
from bridge.localkafka.jvm import find_java
from bridge.localservice.ports import HOST, free_ports
from bridge.resources import RELEASED, avro_dir

# Both programs are small; the default heap (a quarter of the machine) is not needed.
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


def registry_v2_url(ccompat_url: str) -> str:
    """The registry's own v2 REST API, which Apicurio's serdes speak, beside its ccompat
    URL (``.../apis/ccompat/v7`` -> ``.../apis/registry/v2``)."""
    base, found, _ = ccompat_url.rstrip("/").rpartition("/apis/ccompat/")
    assert found, f"not a ccompat URL: {ccompat_url}"
    return f"{base}/apis/registry/v2"


def _java(main_class: str) -> list[str]:
    return [find_java(), *JVM_OPTIONS, "-cp", f"{ensure_libs()}/*", main_class]


@dataclass(frozen=True)
class Dump:
    """What one TopicDump run printed: a line per record, and how it ended."""

    lines: list[dict[str, Any]]
    returncode: int
    stderr: str


def topic_dump(bootstrap: str, topics: Sequence[str], *, registry_url: str | None = None) -> Dump:
    """Every record of ``topics``, as TopicDump decodes them: single-object with the
    committed schemas (current ones read into, released ones as writers too), or, given
    ``registry_url`` (ccompat), the Confluent framing through Apicurio's deserializer."""
    if registry_url is None:
        framing = ["--framing", "single-object", "--schemas", str(avro_dir())]
        framing += ["--writer-schemas", str(avro_dir() / RELEASED)]
    else:
        framing = ["--framing", "registry", "--registry-url", registry_v2_url(registry_url)]
    cmd = [*_java("org.tracebridge.jvm.TopicDump"), "--bootstrap", bootstrap, *framing, *topics]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, check=False, stdin=subprocess.DEVNULL
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line]
    return Dump(lines, result.returncode, result.stderr)


@dataclass
class Connect:
    """A running Kafka Connect standalone worker with the FileStream sink."""

    process: subprocess.Popen[bytes]
    sink_file: Path
    log_file: Path

    def lines(self) -> list[dict[str, Any]]:
        """The JSON documents the sink has written so far (whole lines only)."""
        if not self.sink_file.exists():
            return []
        text = self.sink_file.read_text()
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def wait_for_lines(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Until the sink has written ``count`` lines; the worker's log if it cannot."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if len(lines) >= count:
                return lines
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the sink wrote {len(lines)} of {count} records "
                    f"(worker exit {self.process.poll()}); its log:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def connect_environment(
    bootstrap: str, registry_url: str, topics_regex: str, work_dir: Path
) -> dict[str, str]:
    """The variables deploy/jvm/connect/*.properties read (see their comments)."""
    (port,) = free_ports(1)
    return {
        "CONNECT_BOOTSTRAP_SERVERS": bootstrap,
        "CONNECT_LISTENERS": f"http://{HOST}:{port}",
        "CONNECT_OFFSETS_FILE": str(work_dir / "connect.offsets"),
        "CONNECT_TOPICS_REGEX": topics_regex,
        "CONNECT_REGISTRY_URL": registry_v2_url(registry_url),
        "CONNECT_SINK_FILE": str(work_dir / "sink.jsonl"),
    }


@contextmanager
def running_connect(
    bootstrap: str, registry_url: str, topics_regex: str, work_dir: Path
) -> Iterator[Connect]:
    """Kafka Connect standalone over the topics matching ``topics_regex``; stopped (SIGTERM,
    then SIGKILL) when the block ends."""
    work_dir.mkdir(parents=True, exist_ok=True)
    env = connect_environment(bootstrap, registry_url, topics_regex, work_dir)
    cmd = [
        *_java("org.apache.kafka.connect.cli.ConnectStandalone"),
        str(CONNECT_DIR / "worker.properties"),
        str(CONNECT_DIR / "tracebridge-file-sink.properties"),
    ]
    log_file = work_dir / "connect.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            cmd,
            cwd=work_dir,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    connect = Connect(process, Path(env["CONNECT_SINK_FILE"]), log_file)
    try:
        yield connect
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def prefix_regex(prefix: str) -> str:
    """A Java regex for every topic of a prefix (``<prefix>.<anything>``)."""
    return re.escape(prefix) + r"\..*"
