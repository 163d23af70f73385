"""librdkafka's own log lines, routed through ``logging``, and hushed where they repeat.

A refused login or TLS handshake makes librdkafka log a FAIL line per connection attempt,
and the startup check (``topics.check_reachable``) already reports that refusal as one
clear error. So the lines of a client whose failures are reported otherwise go out at
debug level: always for the admin client (it only runs the startup check and creates
topics), and for the producer once it is closed without having carried a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LIBRDKAFKA_LOGGER = "librdkafka"


class ClientLog(logging.LoggerAdapter[logging.Logger]):
    """What a client's ``logger`` setting gets: the ``librdkafka`` logger, at debug level
    while ``hushed``."""

    def __init__(self, hushed: bool = False) -> None:
        super().__init__(logging.getLogger(LIBRDKAFKA_LOGGER), {})
        self.hushed = hushed

    def log(
        self,
        level: int,
        msg: object,
        *args: object,
        exc_info: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        super().log(
            logging.DEBUG if self.hushed else level,
            msg,
            *args,
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=stacklevel,
            extra=extra,
        )
