"""The pieces a direction's toxic chain is built from.

A chain is a row of stages joined by channels::

    reader -> Channel -> [toxic stage] -> Channel -> [toxic stage] -> Sink -> socket

Everything runs on one event loop, so a stage's output can be re-pointed
between two awaits without locks: that is how toxics are added to and removed
from connections that are already open. A toxic sees its input through a
``Stub``: ``read()`` and ``sleep()`` raise ``Interrupted`` when the stage is
being replaced, and a toxic then passes on any data it holds (never drops it).

Bytes waiting in channels are charged to the direction's ``Budget``; past its
high-water mark the source socket stops being read (backpressure), so memory per
connection stays bounded however slow the far side is.

All proxies share one event loop, so no toxic may hold it: ``sleep(0)`` (or a
negative sleep) still yields to the loop, and ``read()`` yields when the toxic has
run for ``RUN_SLICE_S`` without waiting (issue 10: a slicer with its default
attributes cut 64 KiB into 65,536 one-byte pieces without ever yielding).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections import deque
from typing import Any, Callable, Final, Literal, Protocol, overload


class Interrupted(Exception):
    """The stage is being replaced; the toxic must hand on what it holds and return."""


class Chunk:
    """Bytes read from the source, stamped with the monotonic time they arrived."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float) -> None:
        self.data = data
        self.ts = ts


class End:
    """End of a stream. ``hangup`` means a toxic closed it: the whole link closes."""

    __slots__ = ("hangup",)

    def __init__(self, hangup: bool) -> None:
        self.hangup = hangup

    def __repr__(self) -> str:
        return "End(hangup)" if self.hangup else "End(eof)"


EOF = End(hangup=False)
HANGUP = End(hangup=True)


class TimedOut(enum.Enum):
    """The type of ``TIMED_OUT``: a one-member enum, so ``chunk is TIMED_OUT`` narrows for a type checker."""

    TIMED_OUT = "timed out"


TIMED_OUT: Final = TimedOut.TIMED_OUT

#: The longest a toxic runs on the loop before ``read()`` lets other callbacks in.
RUN_SLICE_S = 0.002

Item = Chunk | End


class Budget:
    """Bytes held in a direction's channels, with high/low water marks."""

    __slots__ = ("held", "high", "low", "over", "on_change")

    def __init__(self, high: int, low: int, on_change: Callable[[], None]) -> None:
        self.held = 0
        self.high = high
        self.low = low
        self.over = False
        self.on_change = on_change

    def add(self, n: int) -> None:
        self.held += n
        if not self.over and self.held > self.high:
            self.over = True
            self.on_change()

    def sub(self, n: int) -> None:
        self.held -= n
        if self.over and self.held <= self.low:
            self.over = False
            self.on_change()


class Outlet(Protocol):
    def put(self, item: Item) -> None: ...


class Channel:
    """An unbounded FIFO between stages; the Budget bounds what it can hold.

    ``handler``, when set, is the reading stage's synchronous path: set only while that
    stage waits in ``read()`` on this empty channel, it may take an item on the spot
    (returning True) instead of the item being queued for the stage's task, saving a
    turn of the event loop per chunk. Order is kept: it runs only when nothing is queued.
    """

    __slots__ = ("items", "waiter", "budget", "handler")

    def __init__(self, budget: Budget) -> None:
        self.items: deque[Item] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.budget = budget
        self.handler: Callable[[Item], bool] | None = None

    def put(self, item: Item) -> None:
        handler = self.handler
        if handler is not None and not self.items and handler(item):
            return
        self.items.append(item)
        if isinstance(item, Chunk):
            self.budget.add(len(item.data))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def take(self) -> Item:
        item = self.items.popleft()
        if isinstance(item, Chunk):
            self.budget.sub(len(item.data))
        return item

    def move_to(self, outlet: Outlet) -> None:
        """Hand every waiting item, in order, to ``outlet``."""
        while self.items:
            outlet.put(self.take())


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Stub:
    """What one toxic sees of one direction of one connection.

    A two-way toxic (one that speaks a protocol: it reads requests on one direction
    and answers on the other) runs as two stages sharing ``state``: ``role`` is
    ``"requests"`` (client to server) or ``"responses"``, ``peer`` is the other
    stage's inbox (``nudge_peer`` wakes it), and ``active`` is the toxicity roll of
    the requests side (such a toxic always parses, to stay in step with the
    protocol, and only acts when active). Ordinary toxics have ``role`` ``""``.
    """

    def __init__(
        self,
        inbox: Channel,
        outbox: Outlet,
        rng: random.Random,
        state: Any,
        reset: Callable[[], None],
        role: str = "",
        peer: Channel | None = None,
    ) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.rng = rng
        self.state = state
        self._reset = reset
        self.role = role
        self.peer = peer
        self.active = True
        #: The toxic's synchronous path for a chunk (see ``Channel.handler``), if it has one.
        self.feed: Callable[[Item], bool] | None = None
        self.interrupted = False
        self.closed = False
        self.ended: End | None = None
        self._waiting: asyncio.Future[None] | None = None
        self._running_since = time.monotonic()  # when this toxic last got the loop back

    # -- input ---------------------------------------------------------------

    @overload
    async def read(self, deadline: None = None) -> Chunk | None: ...

    @overload
    async def read(self, deadline: float) -> Chunk | Literal[TimedOut.TIMED_OUT] | None: ...

    @overload
    async def read(self, deadline: float | None) -> Chunk | Literal[TimedOut.TIMED_OUT] | None: ...

    async def read(self, deadline: float | None = None) -> Chunk | Literal[TimedOut.TIMED_OUT] | None:
        """The next chunk; ``None`` at the end of the stream; ``TIMED_OUT`` past ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            if self.interrupted:
                raise Interrupted
            if self.inbox.items:
                if time.monotonic() - self._running_since >= RUN_SLICE_S:
                    await self._yield()
                    continue
                item = self.inbox.take()
                if isinstance(item, End):
                    self.ended = item
                    return None
                return item
            if deadline is not None and time.monotonic() >= deadline:
                return TIMED_OUT
            fut = loop.create_future()
            self.inbox.waiter = fut
            self.inbox.handler = self.feed
            self._waiting = fut
            timer = None
            if deadline is not None:
                timer = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), _wake, fut)
            try:
                await fut
            finally:
                self.inbox.waiter = None
                self.inbox.handler = None
                self._waiting = None
                self._running_since = time.monotonic()
                if timer is not None:
                    timer.cancel()

    async def sleep(self, seconds: float) -> None:
        """Sleep, or raise ``Interrupted`` as soon as the stage is interrupted."""
        if self.interrupted:
            raise Interrupted
        if seconds <= 0:
            await self._yield()  # a zero delay is still a turn of the loop for everyone else
        else:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._waiting = fut
            timer = loop.call_later(seconds, _wake, fut)
            try:
                await fut
            finally:
                self._waiting = None
                self._running_since = time.monotonic()
                timer.cancel()
        if self.interrupted:
            raise Interrupted

    async def _yield(self) -> None:
        await asyncio.sleep(0)
        self._running_since = time.monotonic()

    async def sleep_until(self, when: float) -> None:
        """Sleep until monotonic time ``when``; never wakes early, even on a coarse-timer loop."""
        while (remaining := when - time.monotonic()) > 0:
            await self.sleep(max(remaining, 0.0002))

    # -- output --------------------------------------------------------------

    def write(self, chunk: Chunk) -> None:
        self.outbox.put(chunk)

    def nudge_peer(self) -> None:
        """Wake the other stage of a two-way toxic (an empty chunk: nothing to deliver)."""
        if self.peer is not None:
            self.peer.put(Chunk(b"", 0.0))

    def close(self) -> None:
        """End the stream downstream of this toxic.

        Passes on the end that arrived (EOF or hang-up); a toxic that ends the
        stream on its own (timeout, limit_data) hangs the connection up.
        """
        if not self.closed:
            self.closed = True
            self.outbox.put(self.ended or HANGUP)

    def reset(self) -> None:
        """Abort the whole connection with a TCP RST on both sides."""
        self.closed = True
        self._reset()

    # -- control -------------------------------------------------------------

    def interrupt(self) -> None:
        self.interrupted = True
        self.inbox.handler = None
        if self._waiting is not None:
            _wake(self._waiting)
