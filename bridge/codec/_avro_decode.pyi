"""Type stub for the table-driven Avro decoder (bridge/codec/_avro_decode.c)."""

from typing import Any

from typing_extensions import Buffer

# "long" | ("record", (("name", tree), ...)) | ("enum", ("A", ...)) | ("fixed", 32) | ...
Tree = str | tuple[str, Any]

class NotHandled(ValueError): ...

class Decoder:
    def add(self, fingerprint: bytes, tree: Tree, /) -> int: ...
    def decode(self, value: Buffer, fields: int = -1, /) -> tuple[int, Any] | None: ...
    def decode_body(
        self, index: int, value: Buffer, offset: int, fields: int = -1, /
    ) -> Any | None: ...
