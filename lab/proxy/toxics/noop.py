"""noop: passes everything through unchanged."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..stream import Stub
from .base import Toxic, pass_through


@dataclasses.dataclass(frozen=True)
class Noop(Toxic):
    type_name: ClassVar[str] = "noop"
    go_struct: ClassVar[str] = "NoopToxic"
    go_types: ClassVar[dict[str, str]] = {}

    async def pipe(self, stub: Stub) -> None:
        await pass_through(stub)
