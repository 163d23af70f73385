"""``tracebridge tail``: decode a topic's records and print them as JSON lines."""

from __future__ import annotations

import json
from typing import Any

import click

from bridge.cli.kafka_security import security_option
from bridge.codec.registry import RegistryConfig, RegistryResolver
from bridge.codec.single_object import committed_schemas
from bridge.consume import ConsumedRecord, IncompleteRead, TopicReader


def jsonable(value: Any) -> Any:
    """Avro values as JSON: bytes become hex (hashes keep wire order; see *_hex fields)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def as_json_line(record: ConsumedRecord) -> str:
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "schema": record.schema.full_name if record.schema else None,
    }
    if record.error:
        out["error"] = record.error
    else:
        out["value"] = jsonable(record.value)
    return json.dumps(out, separators=(",", ":"))


@click.command("tail")
@click.argument("topics", nargs=-1, required=True)
@click.option("--bootstrap-servers", "-b", default="127.0.0.1:19092", show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new records.")
@click.option("--from-end", is_flag=True, help="Only records produced from now on.")
@click.option("--max", "limit", type=int, default=0, help="Stop after this many records.")
@security_option
@click.option(
    "--registry-url",
    envvar="TRACEBRIDGE_REGISTRY__URL",
    help="Schema registry, for values written in registry mode (Confluent wire format).",
)
def tail_command(
    topics: tuple[str, ...],
    bootstrap_servers: str,
    follow: bool,
    from_end: bool,
    limit: int,
    kafka_security: dict[str, str],
    registry_url: str | None,
) -> None:
    """Print TOPICS' records as JSON lines, decoded with the committed Avro schemas.

    \b
    Examples:
      tracebridge tail tracebridge.mempool
      tracebridge tail -f --from-end tracebridge.net tracebridge.bridge
    """
    store = committed_schemas()
    if registry_url:
        store = store.with_resolver(RegistryResolver.from_config(RegistryConfig(url=registry_url)))
    with TopicReader(
        bootstrap_servers,
        topics,
        from_beginning=not from_end,
        store=store,
        security=kafka_security,
    ) as reader:
        try:
            for count, record in enumerate(reader.records(follow=follow or from_end), start=1):
                click.echo(as_json_line(record))
                if limit and count >= limit:
                    break
        except IncompleteRead as error:
            raise click.ClickException(f"the read stopped short: {error}") from None
