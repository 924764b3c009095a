"""A ProxyServer and an echo upstream for tests that drive toxics over real loopback sockets.

Timings carry explicit tolerances: asyncio timers are good to about a millisecond,
and CI machines are shared, so lower bounds are tight and upper bounds generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

from lab.proxy import Context, ProxyServer

from .helpers import http, port_of, start_echo

SLACK_S = 0.25  # upper-bound slack for a loaded CI machine


class Lab:
    """A ProxyServer and an echo upstream in the test's event loop."""

    def __init__(self, server: ProxyServer, echo_port: int) -> None:
        self.server = server
        self.echo_port = echo_port
        self.api = server.address[1]

    async def proxy(self, name: str = "t", upstream: str | None = None, toxics: list[dict] | None = None) -> int:
        status, _, body = await http(self.api, "POST", "/proxies", {
            "name": name, "listen": "127.0.0.1:0", "upstream": upstream or f"127.0.0.1:{self.echo_port}"})
        assert status == 201, body
        for toxic in toxics or []:
            await self.toxic(name, toxic)
        return int(json.loads(body)["listen"].rsplit(":", 1)[1])

    async def toxic(self, proxy: str, toxic: dict) -> dict:
        status, _, body = await http(self.api, "POST", f"/proxies/{proxy}/toxics", toxic)
        assert status == 200, body
        return json.loads(body)


@contextlib.asynccontextmanager
async def running_lab(seed: int = 7) -> AsyncIterator[Lab]:
    """A seeded server and an echo upstream, both closed on the way out."""
    echo = await start_echo()
    server = ProxyServer("127.0.0.1", 0, Context(seed=seed))
    await server.start()
    try:
        yield Lab(server, port_of(echo))
    finally:
        await server.close()
        echo.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def round_trip(reader, writer, payload: bytes = b"hello", timeout: float = 5.0) -> float:
    started = time.monotonic()
    writer.write(payload)
    got = await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    assert got == payload
    return time.monotonic() - started


async def outcome(reader, limit_s: float) -> tuple[str, bytes, float]:
    """Read until EOF, RST or ``limit_s``: ('eof'|'reset'|'open', data, seconds)."""
    started = time.monotonic()
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.0, limit_s - (time.monotonic() - started)))
            if not chunk:
                return "eof", data, time.monotonic() - started
            data += chunk
    except asyncio.TimeoutError:
        return "open", data, time.monotonic() - started
    except ConnectionResetError:
        return "reset", data, time.monotonic() - started
