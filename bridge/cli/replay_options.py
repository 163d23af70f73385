"""Options shared by the commands that read the topics back: replay, audit, export.

They select the same way (brokers, registry, prefix or topics, nodes, streams, time and
offset ranges), so they say it with the same flags, parsed here once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from bridge.cli.kafka_security import security_option
from bridge.codec.registry import RegistryConfig, RegistryResolver
from bridge.codec.single_object import SchemaStore, committed_schemas
from bridge.replay.kafka_range import Window, to_ns
from bridge.replay.selection import event_topics, match_streams

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def parse_time(text: str) -> int:
    """ISO 8601 (no zone: UTC) or a UNIX time with a unit (``1795300000s``, ``...ms``)
    -> ns since the epoch."""
    match = re.fullmatch(r"(\d+)(s|ms|us|ns)", text.strip())
    if match:
        return int(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use ISO 8601 (2026-11-22T10:00:00Z) or e.g. 1795300000s / ...ms"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ns = to_ns(when)
    assert ns is not None
    return ns


def connection_options(func: F) -> F:
    """-b, --registry-url and --config (the cluster's TLS/SASL: ``kafka_security``)."""
    func = security_option(func)
    func = click.option(
        "--registry-url",
        envvar="TRACEBRIDGE_REGISTRY__URL",
        help="Schema registry, for values written in registry mode (Confluent wire format).",
    )(func)
    return click.option("--bootstrap-servers", "-b", default=DEFAULT_BOOTSTRAP, show_default=True)(
        func
    )


def selection_options(func: F) -> F:
    """--prefix, --node, --stream."""
    func = click.option(
        "--stream",
        "streams",
        multiple=True,
        help="Event type, glob or subsystem (net:inbound_message, 'net:*', mempool); "
        "repeatable. Default: all.",
    )(func)
    func = click.option(
        "--node", "nodes", multiple=True, help="Node id to keep; repeatable. Default: all."
    )(func)
    return click.option(
        "--prefix",
        default="tracebridge",
        show_default=True,
        help="Topic prefix (kafka.topic_prefix) whose topics to read.",
    )(func)


def range_options(func: F) -> F:
    """--start/--end (event time) and --start-offset/--end-offset."""
    for name, help_text in (
        ("--end-offset", "Stop before this offset in every partition."),
        ("--start-offset", "Start at this offset in every partition."),
    ):
        func = click.option(name, type=click.IntRange(min=0), help=help_text)(func)
    for name, help_text in (
        ("--end", "Events before this time (exclusive)."),
        ("--start", "Events from this time: ISO 8601 (UTC if no zone) or 1795300000s/ms/ns."),
    ):
        func = click.option(name, help=help_text)(func)
    return func


def window_from(
    start: str | None, end: str | None, start_offset: int | None, end_offset: int | None
) -> Window:
    return Window(
        start_ns=parse_time(start) if start else None,
        end_ns=parse_time(end) if end else None,
        start_offset=start_offset,
        end_offset=end_offset,
    )


def store_for(registry_url: str | None) -> SchemaStore:
    """The committed schemas, resolving Confluent schema ids through the registry if given."""
    store = committed_schemas()
    if registry_url:
        store = store.with_resolver(RegistryResolver.from_config(RegistryConfig(url=registry_url)))
    return store


def chosen_streams(patterns: Sequence[str], store: SchemaStore) -> frozenset[str] | None:
    return match_streams(patterns, store) if patterns else None


def chosen_topics(
    topics: Sequence[str], prefix: str, streams: frozenset[str] | None, store: SchemaStore
) -> list[str]:
    """The topics named, else the prefix's event topics that can hold the streams."""
    return list(topics) if topics else event_topics(prefix, store, streams)
