"""One toxic running on one direction of one connection.

A stage owns the toxic's task and its ``Stub`` (its view of the chain). It can be
stopped and restarted with a new definition while the connection stays open;
whatever the toxic held is handed on, never dropped. A failing toxic ends only
its own connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from .stream import Channel, Interrupted, Item, Outlet, Stub
from .toxics import pass_through
from .toxics.base import as_two_way

if TYPE_CHECKING:
    from .direction import Direction
    from .toxic_collection import ToxicDef

log = logging.getLogger("lab.proxy")


class Stage:
    """One toxic running on one direction of one connection.

    ``role`` is "" for an ordinary toxic; a two-way toxic has a "requests" stage on
    the upstream direction and a "responses" stage on the downstream one, which
    share ``state`` and know each other's inbox (``peer``).
    """

    def __init__(self, direction: "Direction", defn: "ToxicDef", inbox: Channel, outbox: Outlet,
                 role: str = "", state: object = None) -> None:
        self.direction = direction
        self.defn = defn
        self.inbox = inbox
        self.outbox = outbox
        self.role = role
        if state is None:
            new_state = getattr(defn.toxic, "new_state", None)
            state = new_state() if new_state else None
        self.state = state
        self.peer: "Stage | None" = None
        self.stub: Stub | None = None
        self.task: asyncio.Task[None] | None = None
        self.runs = 0

    @property
    def closed(self) -> bool:
        return self.stub is not None and self.stub.closed

    def set_outbox(self, outbox: Outlet) -> None:
        self.outbox = outbox
        if self.stub is not None:
            self.stub.outbox = outbox

    def start(self) -> None:
        self.runs += 1
        link = self.direction.link
        rng = link.proxy.context.rng(link.proxy.name, link.seq, self.direction.name, self.defn.name, self.runs)
        peer = self.peer.inbox if self.peer is not None else None
        self.stub = Stub(self.inbox, self.outbox, rng, self.state, link.reset, self.role, peer)
        feed = getattr(self.defn.toxic, f"feed_{self.role}", None) if self.role else None
        if feed is not None:
            self.stub.feed = self._feeder(feed, self.stub)
        self.task = asyncio.get_running_loop().create_task(self._run(self.stub, self.defn))

    def _feeder(self, feed: "Callable[[Stub, Item], bool]", stub: Stub) -> "Callable[[Item], bool]":
        """The toxic's synchronous path, with its failures contained as ``_run`` contains them."""
        def handle(item: Item) -> bool:
            if stub.interrupted or stub.closed:
                return False
            try:
                return feed(stub, item)
            except Exception:  # a toxic bug must only end its own connection
                log.exception("toxic %s failed on proxy %s", self.defn.name, self.direction.link.proxy.name)
                self.direction.link.close()
                return True
        return handle

    async def _run(self, stub: Stub, defn: "ToxicDef") -> None:
        try:
            if self.role == "requests":
                stub.active = stub.rng.random() < defn.toxicity
                await as_two_way(defn.toxic).pipe_requests(stub)
            elif self.role == "responses":
                await as_two_way(defn.toxic).pipe_responses(stub)
            elif stub.rng.random() < defn.toxicity:
                await defn.toxic.pipe(stub)
            else:
                await pass_through(stub)
        except Interrupted:
            pass
        except Exception:  # a toxic bug must only end its own connection
            log.exception("toxic %s failed on proxy %s", defn.name, self.direction.link.proxy.name)
            self.direction.link.close()
        finally:
            if stub.ended is not None and not stub.closed:
                self.inbox.items.appendleft(stub.ended)  # let the next run see the end too

    async def stop(self) -> None:
        """Interrupt the running toxic and wait until it has handed on what it held.

        Never raises for the toxic's sake: if the link is torn down meanwhile, the
        toxic's task is cancelled, and that cancellation belongs to the link, not
        to the caller (an API handler, which must still answer). Only a
        cancellation of the caller itself propagates.
        """
        if self.stub is not None:
            self.stub.interrupt()
        if self.task is not None and not self.task.done():
            await asyncio.wait((self.task,))

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
