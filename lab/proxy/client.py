"""An asyncio client for any Toxiproxy-compatible server (ours or Shopify's).

Every request is bounded by ``timeout_s``; failures come out as
``ToxiproxyError`` subclasses chosen by status code::

    ToxiproxyError
     ├── ClientTimeout      no answer within timeout_s
     ├── Unreachable        the server refused or dropped the connection
     └── ApiStatusError     the server answered with an error status
          ├── BadRequest    400
          ├── NotFound      404
          ├── AlreadyExists 409
          └── ServerError   5xx

    async with ToxiproxyClient("http://127.0.0.1:8474") as client:
        proxy = await client.create_proxy("pg", upstream="127.0.0.1:5432", listen="127.0.0.1:15432")
        await client.add_toxic("pg", "latency", attributes={"latency": 100})
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any
from urllib.parse import quote, urlsplit


class ToxiproxyError(Exception):
    """Root of the client's errors."""


class ClientTimeout(ToxiproxyError):
    pass


class Unreachable(ToxiproxyError):
    pass


class ApiStatusError(ToxiproxyError):
    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.message = message


class BadRequest(ApiStatusError):
    pass


class NotFound(ApiStatusError):
    pass


class AlreadyExists(ApiStatusError):
    pass


class ServerError(ApiStatusError):
    pass


_BY_STATUS: dict[int, type[ApiStatusError]] = {400: BadRequest, 404: NotFound, 409: AlreadyExists}


@dataclasses.dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Toxic":
        return cls(data["name"], data["type"], data["stream"], float(data["toxicity"]), dict(data["attributes"]))


@dataclasses.dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Proxy":
        toxics = tuple(Toxic.from_json(t) for t in data.get("toxics") or [])
        return cls(data["name"], data["listen"], data["upstream"], bool(data["enabled"]), toxics)

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class ToxiproxyClient:
    def __init__(self, url: str = "http://127.0.0.1:8474", timeout_s: float = 5.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 8474
        self.timeout_s = timeout_s

    async def __aenter__(self) -> "ToxiproxyClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # -- transport -------------------------------------------------------------

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._exchange(method, path, body), self.timeout_s)
        except asyncio.TimeoutError:
            raise ClientTimeout(f"{method} {path}: no answer from {self.host}:{self.port} "
                                f"within {self.timeout_s:g}s") from None
        except (OSError, asyncio.IncompleteReadError) as err:
            raise Unreachable(f"{method} {path}: cannot reach {self.host}:{self.port}: {err}") from None

    async def _exchange(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"User-Agent: lab.proxy.client\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            writer.write(head.encode() + data)
            raw = await reader.read()
        finally:
            writer.close()
        status_line, _, rest = raw.partition(b"\r\n")
        if not status_line.startswith(b"HTTP/1."):
            raise Unreachable(f"{method} {path}: not an HTTP answer from {self.host}:{self.port}")
        payload = rest.partition(b"\r\n\r\n")[2]
        return int(status_line.split(b" ")[1]), payload

    async def _call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        status, payload = await self._request(method, path, body)
        if status not in ok:
            message = payload.decode("utf-8", "replace").strip()
            try:
                message = json.loads(message).get("error", message)
            except (ValueError, AttributeError):
                pass
            cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiStatusError)
            raise cls(status, message, method, path)
        return json.loads(payload) if payload.strip() else None

    # -- API -------------------------------------------------------------------

    async def version(self) -> str:
        version: str = (await self._call("GET", "/version"))["version"]
        return version

    async def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy.from_json(p) for name, p in (await self._call("GET", "/proxies")).items()}

    async def get_proxy(self, name: str) -> Proxy:
        return Proxy.from_json(await self._call("GET", f"/proxies/{_seg(name)}"))

    async def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> Proxy:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return Proxy.from_json(await self._call("POST", "/proxies", body, ok=(201,)))

    async def update_proxy(self, name: str, *, listen: str | None = None, upstream: str | None = None,
                           enabled: bool | None = None) -> Proxy:
        body = {k: v for k, v in (("listen", listen), ("upstream", upstream), ("enabled", enabled)) if v is not None}
        return Proxy.from_json(await self._call("PATCH", f"/proxies/{_seg(name)}", body))

    async def enable(self, name: str) -> Proxy:
        return await self.update_proxy(name, enabled=True)

    async def disable(self, name: str) -> Proxy:
        return await self.update_proxy(name, enabled=False)

    async def delete_proxy(self, name: str) -> None:
        await self._call("DELETE", f"/proxies/{_seg(name)}", ok=(204,))

    async def populate(self, proxies: list[dict[str, Any]]) -> list[Proxy]:
        result = await self._call("POST", "/populate", proxies, ok=(201,))
        return [Proxy.from_json(p) for p in result.get("proxies") or []]

    async def reset(self) -> None:
        await self._call("POST", "/reset", ok=(204,))

    async def toxics(self, proxy: str) -> list[Toxic]:
        return [Toxic.from_json(t) for t in await self._call("GET", f"/proxies/{_seg(proxy)}/toxics")]

    async def add_toxic(self, proxy: str, type: str, *, name: str | None = None, stream: str = "downstream",
                        toxicity: float = 1.0, attributes: dict[str, Any] | None = None) -> Toxic:
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes or {}}
        if name is not None:
            body["name"] = name
        return Toxic.from_json(await self._call("POST", f"/proxies/{_seg(proxy)}/toxics", body))

    async def update_toxic(self, proxy: str, name: str, *, attributes: dict[str, Any] | None = None,
                           toxicity: float | None = None) -> Toxic:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        return Toxic.from_json(await self._call("PATCH", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}", body))

    async def remove_toxic(self, proxy: str, name: str) -> None:
        await self._call("DELETE", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}", ok=(204,))

    async def metrics(self) -> str:
        status, payload = await self._request("GET", "/metrics")
        if status != 200:
            raise _BY_STATUS.get(status, ApiStatusError)(status, "metrics not enabled", "GET", "/metrics")
        return payload.decode()


def _seg(name: str) -> str:
    return quote(name, safe="")
