"""One of a link's two sockets, as asyncio sees it.

A ``Side`` only forwards what its socket reports (data, EOF, loss, write
pressure) to the direction it feeds or the direction that writes into it; it
holds no policy. Bytes that arrive before the link is wired are kept and
replayed in order, so nothing read early is lost.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from .stream import EOF

if TYPE_CHECKING:
    from .direction import Direction
    from .link import Link


class Side(asyncio.Protocol):
    """asyncio's view of one of the link's two sockets."""

    def __init__(self, link: "Link") -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.reading_from: Direction | None = None  # the direction this socket feeds
        self.writing_to: Direction | None = None  # the direction that writes into it
        # Bytes that arrive before the link is wired (some loops read before
        # honouring pause_reading in connection_made); replayed by replay_early().
        self.early: list[bytes] = []
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport reads and writes; asyncio.Protocol types it as the base
        # class, and uvloop's TCPTransport is no asyncio.Transport subclass, so no isinstance here.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()
        self.link.side_connected(self)

    def live_transport(self) -> asyncio.Transport:
        """The transport, for callers past ``connection_made`` (all of the link's set-up and ``data_received``)."""
        if self.transport is None:
            raise RuntimeError("a link side used before its connection was made")
        return self.transport

    def data_received(self, data: bytes) -> None:
        direction = self.reading_from
        if direction is None:
            self.early.append(data)
            self.live_transport().pause_reading()
            return
        direction.on_data(data)

    def eof_received(self) -> bool:
        if self.reading_from is None:
            self.early_eof = True
        else:
            self.reading_from.on_end(EOF)
        return True  # keep our half open: the other direction may still write

    def replay_early(self) -> None:
        direction = self.reading_from
        if direction is None:
            raise RuntimeError("replay_early on a link side not yet wired to a direction")
        early, self.early = self.early, []
        for data in early:
            direction.on_data(data)
        if self.early_eof:
            direction.on_end(EOF)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()

    def pause_writing(self) -> None:
        if self.writing_to is not None:
            self.writing_to.set_dst_paused(True)

    def resume_writing(self) -> None:
        if self.writing_to is not None:
            self.writing_to.set_dst_paused(False)
