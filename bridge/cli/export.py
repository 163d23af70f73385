"""``tracebridge export``: replayed events in other tools' formats."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli.replay_options import connection_options, parse_time, store_for
from bridge.export.capture import (
    SUMMARY_FILE,
    TRUNCATED_LIST,
    Truncated,
    export_capture,
)
from bridge.sinks.kafka.topics import event_topic


@click.group("export")
def export_group() -> None:
    """Write replayed events in other tools' formats."""


@export_group.command("capture")
@connection_options
@click.option("--prefix", default="tracebridge", show_default=True, help="Topic prefix to read.")
@click.option("--node", "nodes", multiple=True, help="Node id to export; repeatable. Default: all.")
@click.option("--start", help="Messages from this time (ISO 8601, UTC if no zone, or 1795300000s).")
@click.option("--end", help="Messages before this time (exclusive).")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="New or empty folder; gets <node>/<peer>/msgs_{recv,sent}.dat.",
)
@click.option(
    "--truncated",
    type=click.Choice([p.value for p in Truncated]),
    default=Truncated.REFUSE.value,
    show_default=True,
    help="Messages whose payload was cut at capture (payload_capture_bytes): refuse to "
    "export, keep the captured bytes (length field = captured size), or skip them.",
)
def capture_command(
    bootstrap_servers: str,
    registry_url: str | None,
    kafka_security: dict[str, str],
    prefix: str,
    nodes: tuple[str, ...],
    start: str | None,
    end: str | None,
    output: Path,
    truncated: str,
) -> None:
    """Write the net:inbound_message / net:outbound_message events as Bitcoin Core's
    -capturemessages files, which contrib/message-capture/message-capture-parser.py
    reads: OUTPUT/<node>/<peer>/msgs_recv.dat and msgs_sent.dat, where <peer> is the
    peer address with ':' replaced by '_' (Core's folder name), each message as 8-byte
    time in us, 12-byte NUL-padded type, 4-byte length, payload (little-endian).

    Core's files hold whole payloads; the bridge keeps at most payload_capture_bytes
    of each. A truncated message stops the export unless --truncated keep or skip;
    either way every such message is listed in OUTPUT/truncated.jsonl and counted in
    OUTPUT/export.json and in the summary printed here.

    \b
    Example:
      tracebridge export capture --node node-a -o capture/
      contrib/message-capture/message-capture-parser.py capture/node-a/*/*.dat
    """
    summary = export_capture(
        bootstrap_servers,
        [event_topic(prefix, "net")],
        output,
        policy=Truncated(truncated),
        nodes=list(nodes) or None,
        start=parse_time(start) if start else None,
        end=parse_time(end) if end else None,
        store=store_for(registry_url),
        consumer_config=kafka_security,
    )
    click.echo(
        f"wrote {summary.messages:,} message(s) ({summary.recv:,} received, {summary.sent:,} "
        f"sent) of {summary.peers} peer(s) of {len(summary.nodes)} node(s) to {output}/; "
        f"summary in {output / SUMMARY_FILE}",
        err=True,
    )
    if summary.truncated:
        action = (
            "written with the captured bytes only (length field = captured size)"
            if summary.policy == Truncated.KEEP.value
            else "left out"
        )
        click.echo(
            f"WARNING: {summary.truncated:,} message(s) were truncated at capture and were "
            f"{action}; listed in {output / TRUNCATED_LIST}",
            err=True,
        )
    if summary.missing:
        click.echo(
            f"WARNING: {summary.missing:,} message(s) are missing from the streams (lost "
            "before Kafka; see `tracebridge audit`): the files do not hold them",
            err=True,
        )
    if summary.msg_type_cut:
        click.echo(f"WARNING: {summary.msg_type_cut} message type(s) cut to 12 bytes", err=True)
