"""One proxied connection: a client socket, an upstream socket, two directions.

"upstream" carries client -> server bytes, "downstream" server -> client, as in
Toxiproxy. With no toxic on a direction, ``data_received`` writes straight into
the other socket's transport (no task hop, no copy beyond the kernel's): that is
the fast path. With toxics, chunks go through a chain of stages (see
``stream.py``) that can be changed while the connection is open.

Ends of streams:
* the peer half-closes: the far side is half-closed after the data ahead of it;
  the link closes once both directions have ended;
* a toxic ends the stream (timeout, limit_data): the whole link closes (FIN);
* reset_peer: both sockets are closed with SO_LINGER 0, which sends RST;
* the proxy is disabled or deleted, or a socket errors: both sockets close now.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Callable

from .stream import EOF, Budget, Channel, Chunk, End, Interrupted, Item, Outlet, Stub
from .toxics import pass_through

if TYPE_CHECKING:
    from .proxy import Proxy
    from .toxic_collection import ToxicDef

log = logging.getLogger("lab.proxy")

#: Bytes a direction may hold in its toxic chain before the source is paused.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)
_COALESCE_BYTES = 64 * 1024


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
        self.transport = transport  # type: ignore[assignment]
        transport.pause_reading()  # type: ignore[attr-defined]
        self.link.side_connected(self)

    def data_received(self, data: bytes) -> None:
        direction = self.reading_from
        if direction is None:
            self.early.append(data)
            self.transport.pause_reading()  # type: ignore[union-attr]
            return
        direction.on_data(data)

    def eof_received(self) -> bool:
        if self.reading_from is None:
            self.early_eof = True
        else:
            self.reading_from.on_end(EOF)
        return True  # keep our half open: the other direction may still write

    def replay_early(self) -> None:
        early, self.early = self.early, []
        for data in early:
            self.reading_from.on_data(data)  # type: ignore[union-attr]
        if self.early_eof:
            self.reading_from.on_end(EOF)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()

    def pause_writing(self) -> None:
        if self.writing_to is not None:
            self.writing_to.set_dst_paused(True)

    def resume_writing(self) -> None:
        if self.writing_to is not None:
            self.writing_to.set_dst_paused(False)


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
                while pending and isinstance(pending[0], Chunk) and size < _COALESCE_BYTES:
                    data = pending.popleft().data  # type: ignore[union-attr]
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
                await defn.toxic.pipe_requests(stub)  # type: ignore[attr-defined]
            elif self.role == "responses":
                await defn.toxic.pipe_responses(stub)  # type: ignore[attr-defined]
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


class Link:
    """A client connection accepted by a proxy and its upstream connection."""

    def __init__(self, proxy: "Proxy", seq: int) -> None:
        self.proxy = proxy
        self.seq = seq
        self.client = Side(self)
        self.upstream = Side(self)
        self.directions: dict[str, Direction] = {}
        self._ended: set[str] = set()
        self.closed = False
        self._dial: asyncio.Task[None] | None = None

    # -- set-up ----------------------------------------------------------------

    def side_connected(self, side: Side) -> None:
        if side is self.client:
            if self.closed:
                side.transport.abort()  # type: ignore[union-attr]
                return
            self.proxy.links[self.seq] = self
            self._dial = asyncio.get_running_loop().create_task(self._connect_upstream())

    async def _connect_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            host, port = split_upstream(self.proxy.upstream)
            await asyncio.wait_for(
                loop.create_connection(lambda: self.upstream, host, port),
                timeout=self.proxy.context.dial_timeout_s,
            )
        except (OSError, ValueError, asyncio.TimeoutError) as err:
            log.warning("proxy %s: unable to open connection to upstream %s: %s",
                        self.proxy.name, self.proxy.upstream, err)
            # Toxiproxy's observable behaviour: RST if the client already sent data, else FIN.
            if self.client.early:
                self.reset()
            else:
                self.close()
            return
        if self.closed:
            self.upstream.transport.abort()  # type: ignore[union-attr]
            return
        self._start()

    def _start(self) -> None:
        proxy = self.proxy
        counters = proxy.byte_counters.counters
        up = Direction(self, "upstream", self.client, self.upstream,
                       counters("upstream", proxy.listen, proxy.name, proxy.upstream))
        down = Direction(self, "downstream", self.upstream, self.client,
                         counters("downstream", proxy.listen, proxy.name, proxy.upstream))
        self.directions = {"upstream": up, "downstream": down}
        for defn in self.proxy.toxics.all():
            self.add_toxic(defn)
        for side in (self.client, self.upstream):
            side.replay_early()
            if not self.closed:
                side.transport.resume_reading()  # type: ignore[union-attr]

    def add_toxic(self, defn: "ToxicDef") -> None:
        """Add a toxic to this connection: to its direction, or, for a two-way toxic (one with
        ``pipe_requests``), a requests stage at the end of upstream and a responses stage at
        the front of downstream (nearest the server, so what it answers passes the other
        downstream toxics), sharing one state."""
        if not self.directions:
            return
        toxic = defn.toxic
        if not hasattr(toxic, "pipe_requests"):
            self.directions[defn.direction].add_toxic(defn)
            return
        # A connection that has already carried bytes is past its start-up: the toxic joins mid-session.
        state = toxic.new_state(mid_stream=self.directions["upstream"].bytes_in > 0)
        requests = self.directions["upstream"].new_stage(defn, "requests", state)
        responses = self.directions["downstream"].new_stage(defn, "responses", state, front=True)
        if requests is not None and responses is not None:
            requests.peer, responses.peer = responses, requests
        for stage in (requests, responses):
            if stage is not None:
                stage.start()

    # -- ends ------------------------------------------------------------------

    def direction_ended(self, direction: Direction, end: End) -> None:
        if end.hangup:
            self.close()
            return
        transport = direction.dst.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone (ENOTCONN): nothing to half-close, end the link
                self.abort()
                return
        self._ended.add(direction.name)
        if len(self._ended) == 2:
            self.close()

    def close(self) -> None:
        """Close both sockets after what is already queued for them (FIN)."""
        self._teardown(graceful=True)

    def abort(self) -> None:
        """Close both sockets now, dropping anything queued."""
        self._teardown(graceful=False)

    def reset(self) -> None:
        """Send RST on both sockets (SO_LINGER 0)."""
        for side in (self.client, self.upstream):
            sock = side.transport.get_extra_info("socket") if side.transport else None
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                except OSError:
                    pass
        self._teardown(graceful=False)

    def _teardown(self, graceful: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.links.pop(self.seq, None)
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        for direction in self.directions.values():
            direction.cancel()
        for side in (self.client, self.upstream):
            if side.transport is not None:
                if graceful:
                    side.transport.close()
                else:
                    side.transport.abort()


def split_upstream(upstream: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, sep, port = upstream.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad upstream address {upstream!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
