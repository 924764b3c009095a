"""All proxies of a server, by name."""

from __future__ import annotations

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
        """Populate's rule: an identical entry keeps the existing proxy (and its toxics)."""
        existing = self.proxies.get(proxy.name)
        if existing is not None:
            if existing.listen == proxy.listen and existing.upstream == proxy.upstream:
                return existing
            await existing.stop()
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def remove(self, name: str) -> bool:
        proxy = self.proxies.pop(name, None)
        if proxy is None:
            return False
        await proxy.stop()
        return True

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop()
