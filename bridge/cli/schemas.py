"""``tracebridge schemas``: the event catalogue as a table."""

from __future__ import annotations

import click

from bridge.codec.single_object import committed_schemas
from bridge.events.avro_schema import event_schema, full_name
from bridge.events.catalog import EVENTS
from bridge.sinks.kafka.topics import bridge_topic, dead_letter_topic, event_topic


def schema_rows(prefix: str) -> list[tuple[str, str, str, str, str]]:
    """(tracepoint, topic, Avro record, stability, fingerprint) for every event."""
    store = committed_schemas()
    rows = []
    for spec in EVENTS:
        name = full_name(event_schema(spec))
        rows.append(
            (
                spec.name,
                event_topic(prefix, spec.subsystem),
                name,
                spec.stability.value,
                store.by_name(name).fingerprint.hex(),
            )
        )
    for topic, name in (
        (bridge_topic(prefix), "tracebridge.bridge.Heartbeat"),
        (dead_letter_topic(prefix), "tracebridge.bridge.DeadLetter"),
    ):
        known = store.by_name(name)
        rows.append(("(bridge)", topic, name, known.stability, known.fingerprint.hex()))
    return rows


@click.command("schemas")
@click.option("--topic-prefix", default="tracebridge", show_default=True)
@click.option("--markdown", is_flag=True, help="Print a Markdown table (as in the README).")
def schemas_command(topic_prefix: str, markdown: bool) -> None:
    """List events, their topics, Avro records and stability tags."""
    rows = schema_rows(topic_prefix)
    header = ("tracepoint", "topic", "Avro record", "stability", "fingerprint")
    if markdown:
        click.echo("| " + " | ".join(header) + " |")
        click.echo("|" + "---|" * len(header))
        for row in rows:
            click.echo("| " + " | ".join(f"`{cell}`" for cell in row) + " |")
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
