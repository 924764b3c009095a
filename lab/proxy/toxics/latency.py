"""latency: delay every chunk by ``latency`` ms, plus or minus up to ``jitter`` ms.

The delay counts from the chunk's timestamp (when it reached the proxy), so chunks
queued behind a delayed one are not delayed twice. The chunk leaves stamped with the
time it was due, so two latency toxics on one direction add up (100 ms + 100 ms =
200 ms, issue 15) and never to less. Toxiproxy adds what it slept to the stamp
instead, which falls short by however long the chunk waited before the toxic took it
up (3 ms on a loaded machine here: a 196.8 ms round trip through 100 + 100 ms).
"""

from __future__ import annotations

import dataclasses
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
            try:
                await stub.sleep_until(until)
            except Interrupted:
                stub.write(chunk)
                raise
            stub.write(Chunk(chunk.data, until) if until > chunk.ts else chunk)
