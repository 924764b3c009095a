"""packet_loss (our extension; Toxiproxy's main branch has one of its own): drop whole chunks.

``rate`` is the fraction of chunks dropped (0 to 1). ``correlation`` (0 to 1) makes
losses come in bursts: each chunk repeats the previous chunk's fate with that
probability, else is dropped with probability ``rate`` afresh. The long-run loss
stays ``rate``; the mean length of a burst of losses grows from ``1 / (1 - rate)``
to ``1 / ((1 - correlation) * (1 - rate))``. The previous fate is per connection
and survives updates.

This is TCP: a dropped chunk is a hole in the byte stream, not a retransmission,
so the peer sees data go missing (and a framed protocol usually desynchronises);
that is the fault being modelled, a broken middlebox, not a lossy link.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..stream import Stub
from .base import Toxic


@dataclasses.dataclass(frozen=True)
class PacketLoss(Toxic):
    type_name: ClassVar[str] = "packet_loss"
    go_struct: ClassVar[str] = "PacketLossToxic"
    go_types: ClassVar[dict[str, str]] = {"rate": "float32", "correlation": "float32"}

    rate: float = 0.0  # fraction of chunks dropped
    correlation: float = 0.0  # probability a chunk shares the previous one's fate

    def check(self) -> None:
        for name in ("rate", "correlation"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} {value} is not between 0 and 1")

    def new_state(self) -> dict[str, Any]:
        return {"dropped": False}

    async def pipe(self, stub: Stub) -> None:
        state = stub.state
        rng = stub.rng
        while True:
            chunk = await stub.read()
            if chunk is None:
                stub.close()
                return
            if not (self.correlation > 0.0 and rng.random() < self.correlation):
                state["dropped"] = rng.random() < self.rate
            if not state["dropped"]:
                stub.write(chunk)
