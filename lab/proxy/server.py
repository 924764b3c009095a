"""The proxy server: the HTTP API plus every proxy it manages."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

from . import listen as listen_addr
from .admission import Admission
from .api import Api, ApiError
from .collection import ProxyCollection
from .http import MAX_HEADER_BYTES, serve_connection
from .metrics import ByteCounters
from .proxy import Context

log = logging.getLogger("lab.proxy")


class ProxyServer:
    """Start with ``await server.start()``; stop with ``await server.close()``.

    Also an async context manager. ``port=0`` picks a free port; ``address``
    tells which one.
    """

    def __init__(self, host: str = "localhost", port: int = 8474, context: Context | None = None,
                 admission: Admission | None = None) -> None:
        self.host = host
        self.port = port
        self.context = context or Context()
        self.admission = admission or Admission()
        self.byte_counters = ByteCounters()
        self.collection = ProxyCollection(self.context, self.byte_counters)
        self.api = Api(self.collection, self.context, self.byte_counters)
        self._server: asyncio.AbstractServer | None = None
        self._sock: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._sock is None:
            raise RuntimeError("server not started")
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    async def start(self) -> None:
        """Bind the API; raises ``listen.ListenError`` naming the address when it cannot."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._sock = listen_addr.bind(f"{host}:{self.port}", backlog=1024)
        self._server = await asyncio.start_server(
            lambda r, w: serve_connection(r, w, self.api.handle, self.admission),
            sock=self._sock,
            limit=MAX_HEADER_BYTES,
        )
        log.info("API HTTP server starting on %s", self.url)

    async def populate_file(self, path: str) -> int:
        """Load a populate-format config file; returns how many proxies it holds."""
        from .http import Request

        try:
            body = Path(path).read_bytes()
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        request = Request("POST", "/populate", "/populate", {}, body)
        response = await self.api.populate(request)
        if response.status != 201:
            raise ConfigError(f"config file {path}: {response.body.decode('utf-8', 'replace')}")
        return len(json.loads(response.body)["proxies"] or [])

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.collection.close()

    async def __aenter__(self) -> "ProxyServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ConfigError(Exception):
    """The ``-config`` file could not be read or applied."""


__all__ = ["ApiError", "ConfigError", "ProxyServer"]
