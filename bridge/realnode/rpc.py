"""A small JSON-RPC client for a node's RPC port, with cookie authentication.

bitcoin-cli would do, but a process per call costs ~20 ms and hides errors in text;
tests make hundreds of calls and want Core's error code and message as an exception.
"""

from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path
from typing import Any


class RpcError(RuntimeError):
    """The node answered with an error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message


class RpcUnavailable(ConnectionError):
    """The node's RPC port did not answer (not started yet, stopping, or gone)."""


class RpcClient:
    """JSON-RPC 1.0 over HTTP to ``127.0.0.1:port``, authenticated by ``cookie_file``."""

    def __init__(self, port: int, cookie_file: Path, timeout_s: float = 60.0) -> None:
        self.port = port
        self.cookie_file = cookie_file
        self.timeout_s = timeout_s
        self._ids = 0

    def _auth(self) -> str:
        try:
            cookie = self.cookie_file.read_text().strip()
        except FileNotFoundError:
            raise RpcUnavailable(f"no RPC cookie at {self.cookie_file} yet") from None
        return "Basic " + base64.b64encode(cookie.encode()).decode()

    def call(self, method: str, *params: Any, wallet: str | None = None) -> Any:
        """Call ``method``; returns its result, raises :class:`RpcError` on an error."""
        self._ids += 1
        body = json.dumps(
            {"jsonrpc": "1.0", "id": self._ids, "method": method, "params": list(params)}
        )
        path = f"/wallet/{wallet}" if wallet is not None else "/"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        try:
            connection.request(
                "POST",
                path,
                body,
                {"Authorization": self._auth(), "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            raw = response.read()
        except (http.client.HTTPException, OSError) as error:
            raise RpcUnavailable(f"RPC port {self.port}: {error}") from None
        finally:
            connection.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RpcUnavailable(
                f"RPC port {self.port} answered HTTP {response.status}: {raw[:200]!r}"
            ) from None
        failure = answer.get("error")
        if failure:
            raise RpcError(method, int(failure.get("code", 0)), str(failure.get("message", "")))
        return answer.get("result")

    def __call__(self, method: str, *params: Any) -> Any:
        return self.call(method, *params)
