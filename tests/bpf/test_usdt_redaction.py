"""privacy.peer_addr end to end over USDT: emulated node → real BPF → bridge → Kafka.

Every record must carry exactly the reference's redaction of the address fired (and no
payload for version/addr/addrv2), the books must still balance, and no address the node
fired may appear anywhere in the bytes of any topic: values, keys, headers, dead
letters and heartbeats alike.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bridge.emulator import UsdtNode, UsdtScenario, build_usdt_node, read_records
from bridge.events.catalog import EVENTS
from bridge.privacy.apply import ADDRESS_MESSAGE_TYPES
from bridge.privacy.reference import Mode, Redaction
from bridge.privacy.settings import PrivacyConfig
from tests.support.pipeline import (
    events_by_stream,
    expected_fields,
    final_books,
    running_bridge,
    settings_for,
    verdicts,
)
from tests.support.raw_topics import leaks, read_raw

pytestmark = [pytest.mark.bpf, pytest.mark.kafka, pytest.mark.slow]

PAYLOAD_CAP = 256
KEY = b"tracebridge-test-key-0123456789ab"
ADDRESS_STREAMS = {spec.name for spec in EVENTS if any(f.address for f in spec.fields)}


def run_redacted(
    kafka_bootstrap: str,
    prefix: str,
    tmp_path: Path,
    scenario: UsdtScenario,
    privacy: dict[str, Any],
) -> Path:
    record = tmp_path / "fired.jsonl"
    with UsdtNode(build_usdt_node(wallet=True)) as node:
        node.start(scenario, record=record)
        settings = settings_for(
            kafka_bootstrap,
            prefix,
            None,
            pid=node.pid,
            reattach=False,
            payload_capture_bytes=PAYLOAD_CAP,
        ).model_copy(update={"privacy": PrivacyConfig(**privacy)})
        with running_bridge(settings, tmp_path) as bridge:
            bridge.wait_for("attached")
            node.go()
            node.wait(timeout=120)
            bridge.wait_for("stopped", timeout=120)
    return record


def fired_addresses(record: Path) -> set[bytes]:
    """Every address the node fired, whole and its host, as the probe read them (cut at
    the 68-byte bound); too short to be told from other bytes ("", "x") left out."""
    out: set[bytes] = set()
    for event in read_records(record):
        if event.tp not in ADDRESS_STREAMS:
            continue
        value = event.args[1]
        text = value if isinstance(value, bytes) else str(value).encode()
        text = text[:68]
        for part in (text, text.rsplit(b":", 1)[0].strip(b"[]")):
            if len(part) >= 7:
                out.add(part)
    return out


def redacted(fields: dict[str, Any], redaction: Redaction) -> dict[str, Any]:
    out = dict(fields)
    out["peer_addr"] = redaction.address(out["peer_addr"])
    if out.get("msg_type") in ADDRESS_MESSAGE_TYPES:
        out["msg"] = b""
        out["msg_truncated"] = out["msg_size"] != 0
    return out


def test_hashed_addresses_arrive_exactly_and_never_in_clear(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "peer.key"
    key_file.write_bytes(KEY + b"\n")
    record = run_redacted(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        UsdtScenario(count=40, values="edge", wait_start=True),
        {"peer_addr": "hash", "key_file": str(key_file), "keep_port": True},
    )
    records, raw = read_raw(kafka_bootstrap, topic_prefix)
    received = events_by_stream(records)
    fired: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for event in read_records(record):
        fired[event.tp].append(event.args)
    redaction = Redaction(Mode.HASH, KEY, keep_port=True)
    withheld = 0
    for stream in ADDRESS_STREAMS:
        sent, got = fired[stream], received[stream]
        assert len(sent) == len(got) == 40
        for args, value in zip(sent, got, strict=True):
            fields = {k: v for k, v in value.items() if k != "envelope"}
            expected = redacted(expected_fields(stream, args, PAYLOAD_CAP), redaction)
            assert fields == expected, stream
            assert fields["peer_addr"].startswith("hmac-sha256=")
            withheld += fields.get("msg_type") in ADDRESS_MESSAGE_TYPES
    assert withheld > 0, "the edge values include version/addr/addrv2 messages"
    secrets = fired_addresses(record)
    assert b"1.2.3.4:8333" in secrets
    assert b"2001:db8::1" in secrets
    assert leaks(raw, secrets) == []
    books = final_books(records)
    for verdict in verdicts(records):
        assert verdict.ok, verdict
        assert verdict.lost == 0
        assert books[(verdict.key[1], verdict.key[2])]["acked"] == len(received[verdict.key[2]])


def test_truncated_addresses_and_dead_letters_keep_no_address(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Random IPv4 peers, and malformed strings that become dead letters: those keep
    their reason but no raw bytes, and are counted as before."""
    record = run_redacted(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        UsdtScenario(count=30, values="random", malformed=True, wait_start=True),
        {"peer_addr": "truncate"},
    )
    records, raw = read_raw(kafka_bootstrap, topic_prefix)
    received = events_by_stream(records)
    for stream in ADDRESS_STREAMS:
        for value in received[stream]:
            addr = value["peer_addr"]
            assert addr == "*" or addr.endswith(("/24", "/48", "/8")), addr
    dead = [r.value for r in records if r.topic.endswith(".deadletter") and r.value]
    assert dead, "the malformed run produced no dead letters"
    for letter in dead:
        assert letter["raw"] == b""
        assert letter["reason"].endswith("not valid UTF-8")
    secrets = fired_addresses(record)
    assert len(secrets) > 30
    assert leaks(raw, secrets) == []
    books = final_books(records)
    for (_, stream), book in books.items():
        assert len(received[stream]) + book["dead_lettered"] == book["fired"]
    assert sum(book["dead_lettered"] for book in books.values()) == len(dead)
    assert all(v.ok for v in verdicts(records))
