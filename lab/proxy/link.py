"""One proxied connection: a client socket, an upstream socket, two directions.

"upstream" carries client -> server bytes, "downstream" server -> client, as in
Toxiproxy. A link dials the upstream, wires its two ``Direction``s (each with
its own toxic chain, see ``direction.py``), adds a toxic to the right direction
or directions, and decides how the connection ends.

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
from typing import TYPE_CHECKING

from .direction import Direction
from .side import Side
from .stream import End
from .toxics.base import is_two_way

if TYPE_CHECKING:
    from .proxy import Proxy
    from .toxic_collection import ToxicDef

log = logging.getLogger("lab.proxy")

_LINGER_ZERO = struct.pack("ii", 1, 0)


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
                side.live_transport().abort()
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
            self.upstream.live_transport().abort()
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
                side.live_transport().resume_reading()

    def add_toxic(self, defn: "ToxicDef") -> None:
        """Add a toxic to this connection: to its direction, or, for a two-way toxic (one with
        ``pipe_requests``), a requests stage at the end of upstream and a responses stage at
        the front of downstream (nearest the server, so what it answers passes the other
        downstream toxics), sharing one state."""
        if not self.directions:
            return
        toxic = defn.toxic
        if not is_two_way(toxic):
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
