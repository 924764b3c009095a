"""One direction of a link: reads a source socket, runs the toxic chain, writes the other.

With no toxic, ``on_data`` writes straight into the destination socket's
transport (no task hop, no copy beyond the kernel's): the fast path. With
toxics, chunks go through a chain of stages (see ``stream.py``) that can be
changed while the connection is open. Bytes held in the chain are bounded by
``HIGH_WATER``: past it the source socket stops being read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .sink import Sink
from .stage import Stage
from .stream import Budget, Channel, Chunk, End, Outlet

if TYPE_CHECKING:
    from .link import Link
    from .side import Side
    from .toxic_collection import ToxicDef

#: Bytes a direction may hold in its toxic chain before the source is paused.
HIGH_WATER = 256 * 1024
#: Held bytes at which a paused source is read again.
LOW_WATER = 64 * 1024


class Direction:
    """One direction of a link: reads ``src``, runs the toxic chain, writes ``dst``."""

    def __init__(self, link: "Link", name: str, src: Side, dst: Side, counters: list[int]) -> None:
        self.link = link
        self.name = name
        self.src = src
        self.dst = dst
        self.counters = counters  # [received, sent], shared with the proxy's metrics
        self.bytes_in = 0  # read from src on this link
        self.budget = Budget(HIGH_WATER, LOW_WATER, self.update_reading)
        self.sink = Sink(self)
        self.head: Outlet = self.sink
        self.stages: list[Stage] = []
        self.dst_paused = False
        src.reading_from = self
        dst.writing_to = self

    # -- data in -------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        self.counters[0] += len(data)
        self.bytes_in += len(data)
        head = self.head
        if head is self.sink:
            sink = self.sink
            if not sink.pending and not self.dst_paused and not sink.ended:
                transport = self.dst.transport
                if transport is not None and not transport.is_closing():
                    transport.write(data)
                    self.counters[1] += len(data)
                return
            sink.put(Chunk(data, 0.0))
        else:
            head.put(Chunk(data, time.monotonic()))

    def on_end(self, end: End) -> None:
        self.head.put(end)

    # -- flow control ----------------------------------------------------------

    def set_dst_paused(self, paused: bool) -> None:
        self.dst_paused = paused
        if not paused:
            self.sink.flush()
        self.update_reading()

    def update_reading(self) -> None:
        transport = self.src.transport
        if transport is None or transport.is_closing():
            return
        if self.budget.over or self.dst_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- toxics ----------------------------------------------------------------

    def _find(self, name: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.defn.name == name:
                return index
        return -1

    def add_toxic(self, defn: "ToxicDef") -> None:
        """Append a stage; data already past the end of the chain is not affected."""
        stage = self.new_stage(defn)
        if stage is not None:
            stage.start()

    def new_stage(self, defn: "ToxicDef", role: str = "", state: object = None,
                  front: bool = False) -> Stage | None:
        """A stage at the end of the chain (or, ``front``, nearest the source), not yet started.

        At the front, data already in the chain stays ahead of anything the new stage passes on.
        """
        if self.sink.ended:
            return None
        inbox = Channel(self.budget)
        if front:
            stage = Stage(self, defn, inbox, self.head, role, state)
            self.head = inbox
            self.stages.insert(0, stage)
            return stage
        stage = Stage(self, defn, inbox, self.sink, role, state)
        if self.stages:
            self.stages[-1].set_outbox(inbox)
        else:
            self.head = inbox
        self.stages.append(stage)
        return stage

    async def update_toxic(self, defn: "ToxicDef") -> None:
        index = self._find(defn.name)
        if index < 0:
            return
        stage = self.stages[index]
        if stage.closed:
            return
        await stage.stop()
        stage.defn = defn
        if not stage.closed and not self.link.closed:
            stage.start()

    async def remove_toxic(self, name: str) -> None:
        index = self._find(name)
        if index < 0:
            return
        stage = self.stages[index]
        was_closed = stage.closed
        settle = getattr(stage.defn.toxic, "settle", None)  # a protocol toxic hands its session over in step
        if settle is not None and not was_closed and stage.stub is not None:
            await settle(stage.stub)
        await stage.stop()
        cleanup = getattr(stage.defn.toxic, "cleanup", None)
        if cleanup is not None and not was_closed and stage.stub is not None:
            cleanup(stage.stub)
        if not stage.closed:
            stage.inbox.move_to(stage.outbox)  # older data first: the outbox already holds it
        else:
            while stage.inbox.items:
                stage.inbox.take()
        if index > 0:
            self.stages[index - 1].set_outbox(stage.outbox)
        else:
            self.head = stage.outbox
        del self.stages[index]

    def cancel(self) -> None:
        for stage in self.stages:
            stage.cancel()
