"""Upstream servers for the proxy benchmark, in their own process.

Prints one JSON line {"echo": port, "sink": port, "hold": port}, then serves
until stdin closes. echo: echoes. sink: counts bytes; when the client half-
closes, answers with the total as 8 bytes. sized: like sink, but the client
says first (8 bytes) how many bytes follow, and the answer comes once they
have all arrived, with no half-close: Toxiproxy closes both directions when
one ends, so a proxy that does that still gets measured. hold: accepts and
does nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.total = 0

    def data_received(self, data):
        self.total += len(data)

    def eof_received(self):
        self.transport.write(self.total.to_bytes(8, "big"))
        self.transport.close()
        return True


class SizedSink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.header = b""
        self.expected = None
        self.total = 0

    def data_received(self, data):
        if self.expected is None:
            self.header += data
            if len(self.header) < 8:
                return
            self.expected = int.from_bytes(self.header[:8], "big")
            data = self.header[8:]
        self.total += len(data)
        if self.total >= self.expected:
            self.transport.write(self.total.to_bytes(8, "big"))


class Hold(asyncio.Protocol):
    pass


async def main() -> None:
    loop = asyncio.get_running_loop()
    servers = {name: await loop.create_server(cls, "127.0.0.1", 0, backlog=4096)
               for name, cls in (("echo", Echo), ("sink", Sink), ("sized", SizedSink), ("hold", Hold))}
    print(json.dumps({name: s.sockets[0].getsockname()[1] for name, s in servers.items()}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
