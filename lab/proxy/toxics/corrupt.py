"""corrupt (our extension): flip bits, each with probability ``probability`` (at most 0.01).

The positions of the flipped bits are drawn as geometric gaps, so the cost is per
flip, not per byte: a 64 KiB chunk at 1e-6 costs one draw. Lengths and order are
kept; only bit values change.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import ClassVar

from ..stream import Chunk, Stub
from .base import Toxic

MAX_PROBABILITY = 0.01


def flip_positions(bits: int, probability: float, rng: random.Random) -> list[int]:
    """The bit positions (0 .. bits-1) to flip: each independently with ``probability``."""
    if probability <= 0.0 or bits <= 0:
        return []
    log_q = math.log1p(-probability)
    positions: list[int] = []
    pos = -1
    while True:
        pos += 1 + int(math.log(1.0 - rng.random()) / log_q)  # geometric gap to the next flip
        if pos >= bits:
            return positions
        positions.append(pos)


@dataclasses.dataclass(frozen=True)
class Corrupt(Toxic):
    type_name: ClassVar[str] = "corrupt"
    go_struct: ClassVar[str] = "CorruptToxic"
    go_types: ClassVar[dict[str, str]] = {"probability": "float32"}

    probability: float = 0.0  # per bit

    def check(self) -> None:
        if not 0.0 <= self.probability <= MAX_PROBABILITY:
            raise ValueError(f"probability {self.probability} is not between 0 and {MAX_PROBABILITY} (per bit)")

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.read()
            if chunk is None:
                stub.close()
                return
            positions = flip_positions(len(chunk.data) * 8, self.probability, stub.rng)
            if not positions:
                stub.write(chunk)
                continue
            data = bytearray(chunk.data)
            for bit in positions:
                data[bit >> 3] ^= 1 << (bit & 7)
            stub.write(Chunk(bytes(data), chunk.ts))
