"""The end of a direction's toxic chain: the destination socket, written in order.

When the destination socket pushes back, items queue here (charged to the
direction's budget) and leave together once it drains: pieces queued behind a
full socket go out as one write of up to ``COALESCE_BYTES``, as the socket's own
buffer would have sent them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .stream import Chunk, Item

if TYPE_CHECKING:
    from .direction import Direction

#: Most bytes joined into one write when a queue behind a full socket drains.
COALESCE_BYTES = 64 * 1024


class Sink:
    """The end of a direction's chain: writes into the destination socket, in order."""

    __slots__ = ("direction", "pending", "ended")

    def __init__(self, direction: "Direction") -> None:
        self.direction = direction
        self.pending: deque[Item] = deque()
        self.ended = False

    def put(self, item: Item) -> None:
        if self.pending or self.direction.dst_paused:
            self.pending.append(item)
            if isinstance(item, Chunk):
                self.direction.budget.add(len(item.data))
        else:
            self.deliver(item)

    def flush(self) -> None:
        pending = self.pending
        while pending and not self.direction.dst_paused:
            item = pending.popleft()
            if isinstance(item, Chunk) and pending and isinstance(pending[0], Chunk):
                # Pieces queued behind a full socket leave together, as the socket's own buffer
                # would send them: one write, not one per piece (a slicer makes 1-byte pieces).
                pieces = [item.data]
                size = len(item.data)
                while pending and isinstance(head := pending[0], Chunk) and size < COALESCE_BYTES:
                    pending.popleft()
                    data = head.data
                    pieces.append(data)
                    size += len(data)
                item = Chunk(b"".join(pieces), item.ts)
            if isinstance(item, Chunk):
                self.direction.budget.sub(len(item.data))
            self.deliver(item)

    def deliver(self, item: Item) -> None:
        if self.ended:
            return
        direction = self.direction
        transport = direction.dst.transport
        if isinstance(item, Chunk):
            if transport is not None and not transport.is_closing():
                transport.write(item.data)
                direction.counters[1] += len(item.data)
            return
        self.ended = True
        direction.link.direction_ended(direction, item)
