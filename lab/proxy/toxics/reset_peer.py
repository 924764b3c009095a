"""reset_peer: on the first data (or end of stream), wait ``timeout`` ms, then send RST."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..stream import Interrupted, Stub
from .base import Toxic


@dataclasses.dataclass(frozen=True)
class ResetPeer(Toxic):
    type_name: ClassVar[str] = "reset_peer"
    go_struct: ClassVar[str] = "ResetToxic"
    go_types: ClassVar[dict[str, str]] = {"timeout": "int64"}

    timeout: int = 0  # milliseconds

    async def pipe(self, stub: Stub) -> None:
        chunk = await stub.read()
        try:
            await stub.sleep(self.timeout / 1000.0)
        except Interrupted:
            if chunk is not None:
                stub.write(chunk)
            raise
        stub.reset()
