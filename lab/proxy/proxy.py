"""A proxy: a listening socket, the toxics it applies and the links it carries."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

from . import listen as listen_addr
from .link import Link
from .metrics import ByteCounters
from .side import Side
from .toxic_collection import ToxicCollection, ToxicDef


@dataclasses.dataclass(frozen=True)
class Context:
    """Server-wide settings every proxy needs; passed explicitly, never global."""

    seed: int | None = None
    dial_timeout_s: float = 10.0
    proxy_metrics: bool = False
    runtime_metrics: bool = False
    #: False: proxies may listen only on loopback addresses (the lab's own stack).
    allow_remote_listen: bool = True
    #: Bound on a listen address's host-name lookup.
    resolve_timeout_s: float = 5.0

    def rng(self, proxy: str, link_seq: int, direction: str, toxic: str, run: int) -> random.Random:
        """The random source for one run of one toxic on one link.

        With a seed, decisions depend only on the seed and on *which* run this
        is (proxy, connection number, direction, toxic, run number), not on
        how concurrent connections happen to interleave.
        """
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}/{proxy}/{link_seq}/{direction}/{toxic}/{run}")


class Proxy:
    def __init__(self, context: Context, byte_counters: ByteCounters, name: str, listen: str, upstream: str) -> None:
        self.context = context
        self.byte_counters = byte_counters
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection()
        self.links: dict[int, Link] = {}
        self._server: asyncio.AbstractServer | None = None
        self._next_seq = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "Logger": {},
            "toxics": [defn.to_json() for defn in self.toxics.all()],
        }

    # -- listening -----------------------------------------------------------

    def _new_link(self) -> Side:
        self._next_seq += 1
        return Link(self, self._next_seq).client

    async def start(self) -> None:
        """Listen; raises ListenError (ListenRefused off loopback when not allowed).
        Starting a started proxy does nothing."""
        if self.enabled:
            return
        sock = await listen_addr.bind_async(
            self.listen,
            loopback_only=not self.context.allow_remote_listen,
            resolve_timeout_s=self.context.resolve_timeout_s,
        )
        if self.enabled:  # started by another caller while this one was resolving
            sock.close()
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_link, sock=sock, backlog=4096)
        self.listen = listen_addr.format_addr(sock.getsockname())
        self.enabled = True

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links.values()):
            link.abort()
        self.enabled = False

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's Update: a new address restarts the proxy, keeping its toxics."""
        if listen != self.listen or upstream != self.upstream:
            await self.stop()
            self.listen = listen
            self.upstream = upstream
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                await self.stop()

    # -- toxics --------------------------------------------------------------

    def add_toxic(self, defn: ToxicDef) -> None:
        self.toxics.add(defn)
        for link in list(self.links.values()):
            link.add_toxic(defn)

    def _directions(self, defn: ToxicDef) -> list[str]:
        """Where a toxic's stages run: its own direction, or both for a two-way toxic."""
        return ["upstream", "downstream"] if hasattr(defn.toxic, "pipe_requests") else [defn.direction]

    async def update_toxic(self, defn: ToxicDef) -> None:
        self.toxics.replace(defn)
        await asyncio.gather(*(
            link.directions[direction].update_toxic(defn)
            for link in list(self.links.values()) if link.directions
            for direction in self._directions(defn)
        ))

    async def remove_toxic(self, name: str) -> ToxicDef | None:
        defn = self.toxics.remove(name)
        if defn is not None:
            await asyncio.gather(*(
                link.directions[direction].remove_toxic(name)
                for link in list(self.links.values()) if link.directions
                for direction in self._directions(defn)
            ))
        return defn

    async def remove_all_toxics(self) -> None:
        for defn in self.toxics.all():
            await self.remove_toxic(defn.name)
