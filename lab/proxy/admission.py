"""How much the API's clients can make the server hold: connections and request-body bytes.

The API has no authentication, so any local user can open connections to it.
Two caps keep what they can pin down bounded (issue 10: 60 stalled 16 MiB bodies
took the proxy to 1 GB):

* at most ``max_connections`` API connections. At the cap, a new connection
  evicts the oldest one that is still *reading* a request (idle keep-alive, a
  half-sent head or body: what a slowloris holds), so stalled clients cannot lock
  out the lab's own calls; only when every connection is busy answering is the
  newcomer turned away with a 503.
* at most ``max_body_bytes`` of request bodies held at once, reserved when a
  request declares its length (or as chunks arrive) and released once its answer
  is written. A body that does not fit gets a 503 before it is read.
"""

from __future__ import annotations

import asyncio
import dataclasses

MAX_CONNECTIONS = 256
MAX_BODY_BYTES_TOTAL = 32 << 20


@dataclasses.dataclass(eq=False)
class Slot:
    """One admitted connection. ``reading`` while it waits for (part of) a request."""

    transport: asyncio.WriteTransport
    reading: bool = True
    body_bytes: int = 0


class Admission:
    def __init__(self, max_connections: int = MAX_CONNECTIONS,
                 max_body_bytes: int = MAX_BODY_BYTES_TOTAL) -> None:
        self.max_connections = max_connections
        self.max_body_bytes = max_body_bytes
        self._slots: dict[Slot, None] = {}  # insertion order: oldest first
        self.body_bytes = 0
        self.evicted = 0
        self.refused = 0

    @property
    def connections(self) -> int:
        return len(self._slots)

    def admit(self, transport: asyncio.WriteTransport) -> Slot | None:
        """A slot for a new connection, evicting the oldest reader at the cap; None: refuse it."""
        if len(self._slots) >= self.max_connections:
            victim = next((slot for slot in self._slots if slot.reading), None)
            if victim is None:
                self.refused += 1
                return None
            self.evicted += 1
            self.leave(victim)
            victim.transport.abort()
        slot = Slot(transport)
        self._slots[slot] = None
        return slot

    def leave(self, slot: Slot) -> None:
        """The connection is done (idempotent): its slot and any body bytes are freed."""
        self._slots.pop(slot, None)
        self.release(slot)

    def reserve(self, slot: Slot, n: int) -> bool:
        """Hold ``n`` more body bytes for ``slot``; False if the total would pass the cap."""
        if self.body_bytes + n > self.max_body_bytes:
            return False
        self.body_bytes += n
        slot.body_bytes += n
        return True

    def release(self, slot: Slot) -> None:
        self.body_bytes -= slot.body_bytes
        slot.body_bytes = 0
