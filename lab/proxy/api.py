"""The Toxiproxy 2.12 HTTP API, byte for byte where clients can tell.

Errors are values (``ApiError``) that carry their status; ``Api.handle`` is the
one place that turns them into responses. Routing follows gorilla/mux as
Toxiproxy configures it: paths are matched after percent-decoding, an unclean
path is redirected (301), a known path with another method is a bare 405, and
only matched routes get the request-id header and the browser check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import re
import time
from typing import Any, Awaitable, Callable

from . import gojson
from .collection import ProxyCollection, ProxyExists
from .gojson import Field, GoJSONError, TypeErrors
from .http import Request, Response
from .listen import ListenError, ListenRefused
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ByteCounters, render
from .proxy import Context, Proxy
from .toxic_collection import ToxicDef
from .toxics import REGISTRY, Toxic

log = logging.getLogger("lab.proxy.api")

VERSION = "2.12.0"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
#: Our header (not Toxiproxy's) on a create or populate whose empty listen went to loopback.
LISTEN_NOTE_HEADER = "X-Lab-Proxy-Listen"
LISTEN_NOTE = "empty listen bound on loopback, not all interfaces: this server runs with -allow-remote-listen=false"


class ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def bad_body(err: GoJSONError) -> ApiError:
    return ApiError(f"bad request body: {err}", 400)


PROXY_NOT_FOUND = ("proxy not found", 404)
TOXIC_NOT_FOUND = ("toxic not found", 404)

_PROXY_FIELDS = (
    Field("name", "string"),
    Field("listen", "string"),
    Field("upstream", "string"),
    Field("enabled", "bool"),
    Field("Logger", "any"),
)
_WRAPPER_FIELDS = (
    Field("attributes", "any"),
    Field("name", "string"),
    Field("type", "string"),
    Field("stream", "string"),
    Field("toxicity", "float32"),
)
_UPDATE_FIELDS = (Field("attributes", "any"), Field("toxicity", "float32"))
_POPULATE_ELEMENT = 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
_UPDATE_STRUCT = (
    'struct { Attributes interface {} "json:\\"attributes\\""; Toxicity float32 "json:\\"toxicity\\"" }'
)


def _check_object(value: Any, go_type: str, errors: TypeErrors, struct_name: str, path: str) -> None:
    if value is not None and not isinstance(value, dict):
        errors.add(gojson.kind_of(value), struct_name, path, go_type)


def decode_proxy(body: bytes) -> dict[str, Any]:
    errors = TypeErrors()
    fields = gojson.decode_struct(gojson.parse(body), _PROXY_FIELDS, "Proxy", "toxiproxy.Proxy", errors) or {}
    _check_object(fields.pop("Logger", None), "zerolog.Logger", errors, "Proxy", "Logger")
    errors.raise_first()
    return fields


MAX_NAME_CHARS = 255


def check_name(kind: str, name: str) -> None:
    """Refuse a proxy or toxic name that no URL could address afterwards, or that would
    carry control characters into logs and headers: ``.``, ``..``, anything with ``/``,
    control characters, more than MAX_NAME_CHARS characters. (Toxiproxy accepts these;
    such a proxy can be created but never shown or deleted.)"""
    shown = repr(name[:40]) + ("..." if len(name) > 40 else "")
    if name in (".", ".."):
        reason = "'.' and '..' cannot be used in a URL path"
    elif "/" in name:
        reason = "it contains '/'"
    elif any(ord(c) < 0x20 or c == "\x7f" for c in name):
        reason = "it contains a control character"
    elif len(name) > MAX_NAME_CHARS:
        reason = f"it is {len(name)} characters long, more than {MAX_NAME_CHARS}"
    else:
        return
    raise ApiError(f"invalid {kind} name {shown}: {reason}", 400)


def decode_attributes(toxic_cls: type[Toxic], raw: Any, struct_name: str, errors: TypeErrors) -> dict[str, Any]:
    fields = [Field(key, go_type) for key, go_type in toxic_cls.go_types.items()]
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.add(gojson.kind_of(raw), struct_name, "attributes", f"toxics.{toxic_cls.go_struct}")
        return {}
    return gojson.decode_struct(raw, fields, toxic_cls.go_struct, "", errors, prefix="attributes.") or {}


class Api:
    """Routes and handlers over a ProxyCollection."""

    def __init__(self, collection: ProxyCollection, context: Context, byte_counters: ByteCounters) -> None:
        self.collection = collection
        self.context = context
        self.byte_counters = byte_counters
        self.started_at = time.time()
        self._mutate = asyncio.Lock()
        self._request_seq = int.from_bytes(os.urandom(3), "big")
        self._machine = os.urandom(3)
        routes: list[tuple[str, dict[str, Callable[..., Awaitable[Response]]]]] = [
            (r"/reset", {"POST": self.reset}),
            (r"/proxies", {"GET": self.proxy_index, "POST": self.proxy_create}),
            (r"/populate", {"POST": self.populate}),
            (r"/proxies/([^/]+)", {"GET": self.proxy_show, "POST": self.proxy_update,
                                   "PATCH": self.proxy_update, "DELETE": self.proxy_delete}),
            (r"/proxies/([^/]+)/toxics", {"GET": self.toxic_index, "POST": self.toxic_create}),
            (r"/proxies/([^/]+)/toxics/([^/]+)", {"GET": self.toxic_show, "POST": self.toxic_update,
                                                  "PATCH": self.toxic_update, "DELETE": self.toxic_delete}),
            (r"/version", {"GET": self.version}),
        ]
        if context.proxy_metrics or context.runtime_metrics:
            routes.append((r"/metrics", {"GET": self.metrics}))
        self._routes = [(re.compile(pattern + r"\Z"), methods) for pattern, methods in routes]

    # -- dispatch --------------------------------------------------------------

    def _request_id(self) -> str:
        """A 20-character xid (base32hex of time, machine, pid, counter)."""
        self._request_seq = (self._request_seq + 1) & 0xFFFFFF
        raw = (
            int(time.time()).to_bytes(4, "big") + self._machine + (os.getpid() & 0xFFFF).to_bytes(2, "big")
            + self._request_seq.to_bytes(3, "big")
        )
        value = int.from_bytes(raw, "big") << 4  # 96 bits -> 20 five-bit digits
        alphabet = "0123456789abcdefghijklmnopqrstuv"
        return "".join(alphabet[(value >> (5 * i)) & 31] for i in range(19, -1, -1))

    async def handle(self, request: Request) -> Response:
        path = request.path
        cleaned = _clean_path(path)
        if cleaned != path:
            # As gorilla/mux via Go's url.URL.String(): the path escaped again, the raw
            # query as it came (its bytes kept: the target was read as Latin-1).
            query = request.target.partition("?")[2].encode("latin-1").decode("utf-8", "surrogateescape")
            location = escape_path(cleaned) + ("?" + query if query else "")
            return Response(301, headers=[("Location", location)])
        for pattern, methods in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                return Response(405)
            headers = [("X-Toxiproxy-Request-Id", self._request_id())]
            if request.user_agent.startswith("Mozilla/"):
                return Response(403, b"User agent not allowed\n", TEXT, [NOSNIFF] + headers)
            try:
                response = await handler(request, *match.groups())
            except ApiError as err:
                response = error_response(err)
            except Exception:  # never let one request take the server down
                log.exception("handler for %s %s failed", request.method, request.path)
                response = error_response(ApiError("internal error", 500))
            except asyncio.CancelledError:
                # A cancellation that is not this request's own (some task it awaited was
                # cancelled) must not leave the client without an answer (issue 10).
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log.exception("handler for %s %s was cancelled from below", request.method, request.path)
                response = error_response(ApiError("internal error", 500))
            response.headers.extend(headers)
            return response
        return Response(404, b"404 page not found\n", TEXT, [NOSNIFF])

    # -- helpers ---------------------------------------------------------------

    def _proxy(self, name: str) -> Proxy:
        proxy = self.collection.get(name)
        if proxy is None:
            raise ApiError(*PROXY_NOT_FOUND)
        return proxy

    # -- handlers --------------------------------------------------------------

    async def version(self, request: Request) -> Response:
        return Response(200, f'{{"version": "{VERSION}"}}\n'.encode(), "application/json;charset=utf-8")

    async def metrics(self, request: Request) -> Response:
        body = render(
            self.byte_counters if self.context.proxy_metrics else None,
            self.started_at if self.context.runtime_metrics else None,
        )
        return Response(200, body, METRICS_CONTENT_TYPE)

    async def proxy_index(self, request: Request) -> Response:
        body = gojson.encode_sorted(self.collection.proxies, lambda proxy: proxy.to_json())
        return json_response(200, body)

    async def proxy_create(self, request: Request) -> Response:
        try:
            fields = decode_proxy(request.body)
        except GoJSONError as err:
            raise bad_body(err) from None
        name, upstream = fields.get("name", ""), fields.get("upstream", "")
        if not name:
            raise ApiError("missing required field: name", 400)
        if not upstream:
            raise ApiError("missing required field: upstream", 400)
        check_name("proxy", name)
        listen = fields.get("listen", "")
        proxy = self.collection.new_proxy(name, listen, upstream)
        async with self._mutate:
            try:
                await self._guard_listen(self.collection.add(proxy, fields.get("enabled", True)))
            except ProxyExists:
                raise ApiError("proxy already exists", 409) from None
        response = json_response(201, gojson.encode(proxy.to_json()))
        self._note_empty_listen(response, [listen])
        return response

    def _note_empty_listen(self, response: Response, listens: list[str]) -> None:
        """Toxiproxy binds an empty ``listen`` on all interfaces; a loopback-only server binds it
        on 127.0.0.1 instead and says so in a header (the body's ``listen`` shows the address)."""
        if "" in listens and not self.context.allow_remote_listen:
            response.headers.append((LISTEN_NOTE_HEADER, LISTEN_NOTE))

    async def proxy_show(self, request: Request, name: str) -> Response:
        return json_response(200, gojson.encode(self._proxy(name).to_json()))

    async def proxy_update(self, request: Request, name: str) -> Response:
        proxy = self._proxy(name)
        try:
            fields = decode_proxy(request.body)
        except GoJSONError as err:
            raise bad_body(err) from None
        async with self._mutate:
            await self._guard_listen(proxy.update(
                fields.get("listen", proxy.listen),
                fields.get("upstream", proxy.upstream),
                fields.get("enabled", proxy.enabled),
            ))
        return json_response(200, gojson.encode(proxy.to_json()))

    async def proxy_delete(self, request: Request, name: str) -> Response:
        async with self._mutate:
            if not await self.collection.remove(name):
                raise ApiError(*PROXY_NOT_FOUND)
        return Response(204)

    async def reset(self, request: Request) -> Response:
        async with self._mutate:
            for proxy in list(self.collection.proxies.values()):
                await self._guard_listen(proxy.start())
                await proxy.remove_all_toxics()
        return Response(204)

    async def populate(self, request: Request) -> Response:
        created: list[Proxy] = []
        try:
            entries = self._decode_populate(request.body)
            async with self._mutate:
                for entry in entries:
                    proxy = self.collection.new_proxy(entry["name"], entry.get("listen", ""), entry["upstream"])
                    kept = await self._guard_listen(
                        self.collection.add_or_replace(proxy, entry.get("enabled", True))
                    )
                    created.append(kept)
        except ApiError as err:
            body = gojson.encode({
                "error": err.message,
                "status": err.status,
                "proxies": [p.to_json() for p in created] or None,
            })
            return json_response(err.status, body)
        response = json_response(201, gojson.encode({"proxies": [p.to_json() for p in created] or None}))
        self._note_empty_listen(response, [entry.get("listen", "") for entry in entries])
        return response

    def _decode_populate(self, body: bytes) -> list[dict[str, Any]]:
        try:
            document = gojson.parse(body)
        except GoJSONError as err:
            raise bad_body(err) from None
        errors = TypeErrors()
        entries: list[dict[str, Any]] = []
        if document is not None and not isinstance(document, list):
            errors.add(gojson.kind_of(document), "", "", "[]" + _POPULATE_ELEMENT)
        for raw in document if isinstance(document, list) else []:
            fields = gojson.decode_struct(raw, _PROXY_FIELDS, "", _POPULATE_ELEMENT, errors) or {}
            _check_object(fields.pop("Logger", None), "zerolog.Logger", errors, "", "Logger")
            entries.append(fields)
        try:
            errors.raise_first()
        except GoJSONError as err:
            raise bad_body(err) from None
        for number, entry in enumerate(entries, start=1):
            if not entry.get("name"):
                raise ApiError(f"missing required field: name at proxy {number}", 400)
            if not entry.get("upstream"):
                raise ApiError(f"missing required field: upstream at proxy {number}", 400)
            check_name("proxy", entry["name"])
        return entries

    @staticmethod
    async def _guard_listen(operation: Awaitable[Any]) -> Any:
        try:
            return await operation
        except ListenRefused as err:
            raise ApiError(str(err), 403) from None
        except ListenError as err:
            raise ApiError(str(err), 500) from None

    async def toxic_index(self, request: Request, name: str) -> Response:
        proxy = self._proxy(name)
        return json_response(200, gojson.encode([defn.to_json() for defn in proxy.toxics.all()]))

    async def toxic_create(self, request: Request, name: str) -> Response:
        proxy = self._proxy(name)
        try:
            document = gojson.parse(request.body)
        except GoJSONError as err:
            raise bad_body(err) from None
        errors = TypeErrors()
        wrapper = gojson.decode_struct(document, _WRAPPER_FIELDS, "ToxicWrapper", "toxics.ToxicWrapper", errors) or {}
        _check_object(wrapper.get("attributes"), "toxics.NoopToxic", errors, "ToxicWrapper", "attributes")
        try:
            errors.raise_first()
        except GoJSONError as err:
            raise bad_body(err) from None
        stream = wrapper.get("stream", "downstream")
        direction = stream.lower()
        if direction not in ("upstream", "downstream"):
            raise ApiError("stream was invalid, can be either upstream or downstream", 400)
        toxic_type = wrapper.get("type", "")
        toxic_name = wrapper.get("name") or f"{toxic_type}_{stream}"
        toxic_cls = REGISTRY.get(toxic_type)
        if toxic_cls is None:
            raise ApiError("invalid toxic type", 400)
        check_name("toxic", toxic_name)
        async with self._mutate:
            if proxy.toxics.find(toxic_name) is not None:
                raise ApiError("toxic already exists", 409)
            attr_errors = TypeErrors()
            attributes = decode_attributes(toxic_cls, wrapper.get("attributes"), toxic_cls.go_struct, attr_errors)
            try:
                attr_errors.raise_first()
            except GoJSONError as err:
                raise bad_body(err) from None
            defn = ToxicDef(
                name=toxic_name,
                type=toxic_type,
                stream=stream,
                direction=direction,
                toxicity=wrapper.get("toxicity", 1.0),
                toxic=checked(toxic_cls(**attributes)),
            )
            proxy.add_toxic(defn)
        return json_response(200, gojson.encode(defn.to_json()))

    def _toxic(self, proxy: Proxy, toxic_name: str) -> ToxicDef:
        defn = proxy.toxics.find(toxic_name)
        if defn is None:
            raise ApiError(*TOXIC_NOT_FOUND)
        return defn

    async def toxic_show(self, request: Request, name: str, toxic_name: str) -> Response:
        defn = self._toxic(self._proxy(name), toxic_name)
        return json_response(200, gojson.encode(defn.to_json()))

    async def toxic_update(self, request: Request, name: str, toxic_name: str) -> Response:
        proxy = self._proxy(name)
        async with self._mutate:
            defn = self._toxic(proxy, toxic_name)
            try:
                document = gojson.parse(request.body)
            except GoJSONError as err:
                raise bad_body(err) from None
            errors = TypeErrors()
            fields = gojson.decode_struct(document, _UPDATE_FIELDS, "", _UPDATE_STRUCT, errors) or {}
            toxic_cls = type(defn.toxic)
            changes = decode_attributes(toxic_cls, fields.get("attributes"), "", errors)
            try:
                errors.raise_first()
            except GoJSONError as err:
                raise bad_body(err) from None
            updated = ToxicDef(
                name=defn.name,
                type=defn.type,
                stream=defn.stream,
                direction=defn.direction,
                toxicity=fields.get("toxicity", defn.toxicity),
                toxic=checked(defn.toxic.merged(changes)),
            )
            await proxy.update_toxic(updated)
        return json_response(200, gojson.encode(updated.to_json()))

    async def toxic_delete(self, request: Request, name: str, toxic_name: str) -> Response:
        proxy = self._proxy(name)
        async with self._mutate:
            if await proxy.remove_toxic(toxic_name) is None:
                raise ApiError(*TOXIC_NOT_FOUND)
        return Response(204)


def checked(toxic: Any) -> Any:
    """The toxic, or a 400 naming what is wrong with its attributes (our toxic types only)."""
    try:
        toxic.check()
    except ValueError as err:
        raise ApiError(f"invalid attributes for toxic type {toxic.type_name}: {err}", 400) from None
    return toxic


def json_response(status: int, body: str) -> Response:
    return Response(status, body.encode("utf-8"), JSON)


def error_response(err: ApiError) -> Response:
    body = gojson.encode({"error": err.message, "status": err.status}) + "\n"
    return Response(err.status, body.encode("utf-8"), TEXT, [NOSNIFF])


_PATH_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~$&+,/:;=@")


def escape_path(path: str) -> str:
    """Go's ``url.PathEscape`` rules for a whole path (``escape(s, encodePath)``): '/' kept,
    every byte outside the unreserved and sub-delimiter set percent-encoded (upper-case hex)."""
    raw = path.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if b in _PATH_SAFE else f"%{b:02X}" for b in raw)


def _clean_path(path: str) -> str:
    """gorilla/mux's cleanPath: path.Clean, keeping a trailing slash."""
    if path == "":
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


__all__ = ["Api", "ApiError", "VERSION"]
