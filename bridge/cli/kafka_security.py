"""``--config`` for the commands that read the topics back (tail, replay, audit, export).

They reach the same cluster as the bridge, so they take its security the same way: the
bridge's TOML file and the ``TRACEBRIDGE_KAFKA__TLS__*`` / ``__SASL__*`` environment,
through ``bridge.sinks.kafka.security.client_security``. Without either, the
connection is plaintext, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bridge.config import load_settings
from bridge.sinks.kafka.security import client_security

F = TypeVar("F", bound=Callable[..., Any])


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> dict[str, str]:
    return client_security(load_settings(value).kafka)


def security_option(func: F) -> F:
    """``--config FILE`` -> the ``kafka_security`` parameter: librdkafka's TLS/SASL settings."""
    return click.option(
        "--config",
        "kafka_security",
        type=click.Path(path_type=Path),
        callback=_load,
        help="The bridge's TOML config, for its kafka.tls and kafka.sasl (the "
        "TRACEBRIDGE_KAFKA__* environment applies too).",
    )(func)
