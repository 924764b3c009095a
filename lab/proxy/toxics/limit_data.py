"""limit_data: pass ``bytes`` bytes in total on a connection, then close it.

The count is per connection and survives updates of the toxic.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..stream import Chunk, Stub
from .base import Toxic


@dataclasses.dataclass(frozen=True)
class LimitData(Toxic):
    type_name: ClassVar[str] = "limit_data"
    go_struct: ClassVar[str] = "LimitDataToxic"
    go_types: ClassVar[dict[str, str]] = {"bytes": "int64"}

    bytes: int = 0

    def new_state(self) -> dict[str, Any]:
        return {"sent": 0}

    async def pipe(self, stub: Stub) -> None:
        state = stub.state
        while True:
            chunk = await stub.read()
            if chunk is None:
                stub.close()
                return
            remaining = max(0, self.bytes - state["sent"])
            data = chunk.data[:remaining]
            if data:
                stub.write(Chunk(data, chunk.ts))
                state["sent"] += len(data)
            if self.bytes - state["sent"] <= 0:
                stub.close()
                return
