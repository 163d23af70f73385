"""tracebridge export capture against a real broker: Core's files, read back independently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge.cli.export import capture_command
from bridge.export.capture import TRUNCATED_LIST
from tests.support.capture_reader import read_capture_dir
from tests.support.forge import WALL_OFFSET_NS, Forge

pytestmark = [pytest.mark.kafka]

IN, OUT = "net:inbound_message", "net:outbound_message"
PEER_1, PEER_2 = "198.51.100.1:8333", "[2001:db8::2]:18444"


def populate(forge: Forge, *, truncated: bool) -> None:
    session = forge.session("node-a")
    session.event(IN, peer_addr=PEER_1, msg_type="version", msg=b"v" * 102, msg_size=102)
    session.event(OUT, peer_addr=PEER_1, msg_type="verack", msg=b"", msg_size=0)
    session.event(IN, peer_addr=PEER_2, msg_type="ping", msg=b"12345678", msg_size=8)
    session.event(
        IN,
        peer_addr=PEER_1,
        msg_type="block",
        msg=b"B" * 256,
        msg_size=1_000_000 if truncated else 256,
    )
    session.event(OUT, peer_addr=PEER_2, msg_type="pong", msg=b"12345678", msg_size=8)
    session.event(IN, lost_before=1, peer_addr=PEER_1, msg_type="tx", msg=b"t" * 60, msg_size=60)
    session.heartbeat()
    forge.flush()


def export(bootstrap: str, prefix: str, out: Path, *extra: str) -> Result:
    args = ["-b", bootstrap, "--prefix", prefix, "-o", str(out), *extra]
    return CliRunner().invoke(capture_command, args)


def test_capture_round_trip(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge, truncated=False)
    result = export(kafka_bootstrap, topic_prefix, tmp_path / "cap")
    assert result.exit_code == 0, result.output
    files = read_capture_dir(tmp_path / "cap" / "node-a")
    assert sorted(files) == [
        ("198.51.100.1_8333", "msgs_recv.dat"),
        ("198.51.100.1_8333", "msgs_sent.dat"),
        ("[2001_db8__2]_18444", "msgs_recv.dat"),
        ("[2001_db8__2]_18444", "msgs_sent.dat"),
    ]
    recv = files[("198.51.100.1_8333", "msgs_recv.dat")]
    assert [(m.msg_type, len(m.payload)) for m in recv] == [
        ("version", 102),
        ("block", 256),
        ("tx", 60),
    ]
    times = [m.time_us for m in recv]
    assert times == sorted(times)
    assert times[0] == (WALL_OFFSET_NS + 1_000_000_000 + 1_000) // 1000
    assert files[("198.51.100.1_8333", "msgs_sent.dat")][0].payload == b""
    assert "1 message(s) are missing" in result.output


def test_truncated_capture_is_refused_kept_or_skipped(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    forge = Forge(kafka_bootstrap, topic_prefix)
    populate(forge, truncated=True)

    refused = export(kafka_bootstrap, topic_prefix, tmp_path / "refused")
    assert refused.exit_code == 1
    assert "captured truncated: 256 of 1000000" in str(refused.exception)
    assert not (tmp_path / "refused").exists()

    kept = export(kafka_bootstrap, topic_prefix, tmp_path / "kept", "--truncated", "keep")
    assert kept.exit_code == 0, kept.output
    assert "1 message(s) were truncated at capture" in kept.output
    recv = read_capture_dir(tmp_path / "kept" / "node-a")[("198.51.100.1_8333", "msgs_recv.dat")]
    assert [(m.msg_type, len(m.payload)) for m in recv] == [
        ("version", 102),
        ("block", 256),
        ("tx", 60),
    ]
    listed = json.loads((tmp_path / "kept" / TRUNCATED_LIST).read_text())
    assert (listed["msg_type"], listed["msg_size"], listed["captured"]) == ("block", 1_000_000, 256)

    skipped = export(kafka_bootstrap, topic_prefix, tmp_path / "skipped", "--truncated", "skip")
    assert skipped.exit_code == 0
    recv = read_capture_dir(tmp_path / "skipped" / "node-a")[("198.51.100.1_8333", "msgs_recv.dat")]
    assert [m.msg_type for m in recv] == ["version", "tx"]
