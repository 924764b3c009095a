"""slicer: cut chunks into pieces of about ``average_size`` ± ``size_variation`` bytes,
``delay`` MICROseconds apart (Toxiproxy's unit for this one attribute).

Every piece is followed by a ``stub.sleep``, which yields the event loop even at
``delay`` 0, so a slicer cannot starve other connections.
"""

from __future__ import annotations

import dataclasses
import random
from typing import ClassVar, Iterator

from ..stream import Chunk, Interrupted, Stub
from .base import Toxic


def slice_bounds(size: int, average: int, variation: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    """Split ``[0, size)`` by halving around the middle until pieces are small enough.

    Lazily, in order: a 64 KiB chunk cut to single bytes is 65,536 pieces, and the
    toxic sends (and yields the loop) between them rather than cutting all first.
    """
    pending = [(0, size)]
    while pending:
        start, end = pending.pop()
        if (end - start) - average <= variation or end - start <= 1:
            yield start, end
            continue
        jitter = rng.randrange(variation * 2) - variation if variation > 0 else 0
        middle = min(max(start + (end - start) // 2 + jitter, start + 1), end - 1)
        pending.append((middle, end))
        pending.append((start, middle))


@dataclasses.dataclass(frozen=True)
class Slicer(Toxic):
    type_name: ClassVar[str] = "slicer"
    go_struct: ClassVar[str] = "SlicerToxic"
    go_types: ClassVar[dict[str, str]] = {"average_size": "int", "size_variation": "int", "delay": "int"}

    average_size: int = 0  # bytes
    size_variation: int = 0  # bytes
    delay: int = 0  # microseconds

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.read()
            if chunk is None:
                stub.close()
                return
            data = chunk.data
            sent = 0
            try:
                for start, end in slice_bounds(len(data), self.average_size, self.size_variation, stub.rng):
                    stub.write(Chunk(data[start:end], chunk.ts))
                    sent = end
                    await stub.sleep(self.delay / 1_000_000.0)
            except Interrupted:
                if sent < len(data):
                    stub.write(Chunk(data[sent:], chunk.ts))
                raise
