"""latency: delay every chunk by ``latency`` ms, plus or minus up to ``jitter`` ms.

The delay counts from when the chunk reached the proxy, so chunks queued behind
a delayed one are not delayed twice.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..stream import Interrupted, Stub
from .base import Toxic


@dataclasses.dataclass(frozen=True)
class Latency(Toxic):
    type_name: ClassVar[str] = "latency"
    go_struct: ClassVar[str] = "LatencyToxic"
    go_types: ClassVar[dict[str, str]] = {"latency": "int64", "jitter": "int64"}

    latency: int = 0  # milliseconds
    jitter: int = 0  # milliseconds

    def delay_s(self, stub: Stub) -> float:
        delay_ms = self.latency
        if self.jitter > 0:
            delay_ms += stub.rng.randrange(self.jitter * 2) - self.jitter
        return delay_ms / 1000.0

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.read()
            if chunk is None:
                stub.close()
                return
            try:
                await stub.sleep_until(chunk.ts + self.delay_s(stub))
            except Interrupted:
                stub.write(chunk)
                raise
            stub.write(chunk)
