"""All proxies of a server, by name."""

from __future__ import annotations

from . import listen as listen_addr
from .metrics import ByteCounters
from .proxy import Context, Proxy


class ProxyExists(Exception):
    pass


class ProxyCollection:
    def __init__(self, context: Context, byte_counters: ByteCounters) -> None:
        self.context = context
        self.byte_counters = byte_counters
        self.proxies: dict[str, Proxy] = {}

    def new_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        return Proxy(self.context, self.byte_counters, name, listen, upstream)

    def get(self, name: str) -> Proxy | None:
        return self.proxies.get(name)

    async def add(self, proxy: Proxy, start: bool) -> Proxy:
        """Add a new proxy, listening if ``start``; raises ProxyExists or ListenError."""
        if proxy.name in self.proxies:
            raise ProxyExists(proxy.name)
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def add_or_replace(self, proxy: Proxy, start: bool) -> Proxy:
        """Populate's rule: an entry naming the same addresses keeps the existing proxy (and its
        toxics). Listen addresses are compared as resolved (``localhost:7070`` is the
        ``127.0.0.1:7070`` an enabled proxy reports), as Toxiproxy does; upstreams as written."""
        existing = self.proxies.get(proxy.name)
        if existing is not None:
            if existing.upstream == proxy.upstream and await self._same_listen(existing.listen, proxy.listen):
                return existing
            await existing.stop()
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def _same_listen(self, current: str, wanted: str) -> bool:
        if current == wanted:
            return True
        loopback_only = not self.context.allow_remote_listen
        timeout_s = self.context.resolve_timeout_s
        resolved = await listen_addr.resolved_async(wanted, loopback_only, timeout_s)
        return resolved is not None and resolved == await listen_addr.resolved_async(current, loopback_only, timeout_s)

    async def remove(self, name: str) -> bool:
        proxy = self.proxies.pop(name, None)
        if proxy is None:
            return False
        await proxy.stop()
        return True

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop()
