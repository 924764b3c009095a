"""bandwidth: pass at most ``rate`` KB/s (1 KB = 1000 bytes).

Large chunks go out in 100 ms slices. A rate of 0 (or less) stalls the stream
without closing it, as Toxiproxy does.
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

from ..stream import Chunk, Interrupted, Stub
from .base import Toxic

_STALL_S = 3600.0


@dataclasses.dataclass(frozen=True)
class Bandwidth(Toxic):
    type_name: ClassVar[str] = "bandwidth"
    go_struct: ClassVar[str] = "BandwidthToxic"
    go_types: ClassVar[dict[str, str]] = {"rate": "int64"}

    rate: int = 0  # KB/s

    async def pipe(self, stub: Stub) -> None:
        owed_s = 0.0  # time still to wait for bytes already passed
        while True:
            chunk = await stub.read()
            if chunk is None:
                stub.close()
                return
            data = chunk.data
            try:
                if self.rate <= 0:
                    while True:
                        await stub.sleep(_STALL_S)
                bytes_per_slice = self.rate * 100
                owed_s += len(data) / (self.rate * 1000.0)
                while len(data) > bytes_per_slice:
                    await stub.sleep(0.1)
                    stub.write(Chunk(data[:bytes_per_slice], chunk.ts))
                    data = data[bytes_per_slice:]
                    owed_s -= 0.1
                started = time.monotonic()
                await stub.sleep(owed_s)
                owed_s -= time.monotonic() - started
            except Interrupted:
                stub.write(Chunk(data, chunk.ts))
                raise
            stub.write(Chunk(data, chunk.ts))
