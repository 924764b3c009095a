"""timeout: swallow all data; close the connection ``timeout`` ms after the last chunk.

``timeout`` 0 is a blackhole that never closes. Removing the toxic from a live
connection closes that connection (Toxiproxy's Cleanup).
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

from ..stream import TIMED_OUT, Stub
from .base import Toxic


@dataclasses.dataclass(frozen=True)
class Timeout(Toxic):
    type_name: ClassVar[str] = "timeout"
    go_struct: ClassVar[str] = "TimeoutToxic"
    go_types: ClassVar[dict[str, str]] = {"timeout": "int64"}

    timeout: int = 0  # milliseconds

    async def pipe(self, stub: Stub) -> None:
        timeout_s = self.timeout / 1000.0
        deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
        while True:
            chunk = await stub.read(deadline)
            if chunk is None or chunk is TIMED_OUT:
                stub.close()
                return
            if deadline is not None:
                deadline = time.monotonic() + timeout_s

    def cleanup(self, stub: Stub) -> None:
        stub.close()
