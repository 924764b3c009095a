"""Real-socket helpers for the proxy tests: a raw HTTP client, echo servers, a threaded server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

from lab.proxy import Context, ProxyServer


async def http(port: int, method: str, path: str, body: bytes | str | dict | list | None = None,
               headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; returns (status, lower-cased headers, body)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else (body or b"")
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", "Accept: */*"]
    for name, value in (headers or {"User-Agent": "curl/7.88.1"}).items():
        lines.append(f"{name}: {value}")
    if data or method in ("POST", "PATCH", "PUT"):
        lines.append(f"Content-Length: {len(data)}")
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    status = int(head_lines[0].split(" ")[1])
    parsed = {}
    for line in head_lines[1:]:
        name, _, value = line.partition(": ")
        parsed[name.lower()] = value
    return status, parsed, payload


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def start_echo(port: int = 0) -> asyncio.AbstractServer:
    return await asyncio.start_server(_echo, "127.0.0.1", port, reuse_address=True)


def port_of(server: asyncio.AbstractServer) -> int:
    return server.sockets[0].getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """A ProxyServer on its own event loop in a thread, for synchronous clients."""

    def __init__(self, context: Context | None = None, echo: bool = True) -> None:
        self.context = context
        self.echo = echo
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: ProxyServer | None = None
        self.echo_port = 0

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()

        async def boot() -> None:
            self.server = ProxyServer("127.0.0.1", 0, self.context)
            await self.server.start()
            if self.echo:
                self._echo = await start_echo()
                self.echo_port = port_of(self._echo)

        self.call(boot())
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.address[1]

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            assert self.server is not None
            await self.server.close()
            if self.echo:
                self._echo.close()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
