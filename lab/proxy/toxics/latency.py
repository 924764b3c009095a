"""latency: delay every chunk by ``latency`` ms, plus or minus up to ``jitter`` ms.

The delay counts from the chunk's timestamp (when it reached the proxy), so chunks
queued behind a delayed one are not delayed twice. After sleeping, the toxic moves
the chunk's timestamp forward by what it slept, as Toxiproxy does: two latency
toxics on one direction add up (100 ms + 100 ms = 200 ms, issue 15).
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

from ..stream import Chunk, Interrupted, Stub
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
            until = chunk.ts + self.delay_s(stub)
            slept_s = max(0.0, until - time.monotonic())
            try:
                await stub.sleep_until(until)
            except Interrupted:
                stub.write(chunk)
                raise
            stub.write(Chunk(chunk.data, chunk.ts + slept_s) if slept_s > 0 else chunk)
