"""slow_close: hold the end of the stream back for ``delay`` ms."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..stream import Stub
from .base import Toxic


@dataclasses.dataclass(frozen=True)
class SlowClose(Toxic):
    type_name: ClassVar[str] = "slow_close"
    go_struct: ClassVar[str] = "SlowCloseToxic"
    go_types: ClassVar[dict[str, str]] = {"delay": "int64"}

    delay: int = 0  # milliseconds

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.read()
            if chunk is None:
                await stub.sleep(self.delay / 1000.0)
                stub.close()
                return
            stub.write(chunk)
