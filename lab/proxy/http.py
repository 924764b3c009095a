"""A small HTTP/1.1 server: enough of Go's net/http for the Toxiproxy API.

Keep-alive, ``Connection: close``, Content-Length and chunked request bodies,
``Expect: 100-continue``, and Go's plain ``400 Bad Request`` for requests it
cannot parse. Every read has a time bound; headers and bodies have size bounds,
and an ``Admission`` caps connections and the body bytes held by all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
from http import HTTPStatus
from typing import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from .admission import Admission, Slot

log = logging.getLogger("lab.proxy.api")

#: A request head larger than this is a 431. Also the most a connection buffers while
#: it waits for a head (asyncio reads up to twice a StreamReader's limit ahead).
MAX_HEADER_BYTES = 64 << 10
MAX_BODY_BYTES = 16 << 20
IDLE_TIMEOUT_S = 120.0
BODY_TIMEOUT_S = 60.0


@dataclasses.dataclass
class Request:
    method: str
    target: str
    path: str  # percent-decoded, as Go's URL.Path
    headers: dict[str, str]  # lower-case names; repeated headers keep the first
    body: bytes = b""

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: Go writes ``Content-Length: 0`` on empty bodies except for 204 and HEAD.
    length_header: bool = True


class BadRequest(Exception):
    pass


Handler = Callable[[Request], Awaitable[Response]]


def _decode_path(target: str) -> str:
    raw = target.split("?", 1)[0]
    if raw.startswith(("http://", "https://")):
        after_scheme = raw.split("://", 1)[1]
        slash = after_scheme.find("/")
        raw = after_scheme[slash:] if slash >= 0 else "/"
    for index, ch in enumerate(raw):
        if ch == "%":
            escape = raw[index + 1 : index + 3]
            if len(escape) != 2 or any(c not in "0123456789abcdefABCDEF" for c in escape):
                raise BadRequest("invalid URL escape")
    return unquote_to_bytes(raw).decode("utf-8", errors="replace")


class TooBusy(Exception):
    """The request's body does not fit in what the server may hold now (a 503)."""


def _is_chunked(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


def _declared_length(headers: dict[str, str]) -> int:
    """The Content-Length of a non-chunked request (0 without one)."""
    if _is_chunked(headers):
        return 0
    length_text = headers.get("content-length")
    if length_text is None:
        return 0
    if not length_text.isdigit():
        raise BadRequest("bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise BadRequest("body too large")
    return length


async def _read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    """``n`` bytes, read in pieces so the stream's buffer never holds more than a piece."""
    if n <= 1 << 16:
        return await reader.readexactly(n)
    body = bytearray()
    while len(body) < n:
        piece = await reader.read(min(n - len(body), 1 << 16))
        if not piece:
            raise asyncio.IncompleteReadError(bytes(body), n)
        body += piece
    return bytes(body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], length: int,
                     reserve: Callable[[int], bool]) -> bytes:
    """The body; ``length`` is already reserved, chunks are reserved as they come."""
    if _is_chunked(headers):
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size < 0 or len(body) + size > MAX_BODY_BYTES:
                raise BadRequest("body too large")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return bytes(body)
            if not reserve(size):
                raise TooBusy
            body += await _read_exactly(reader, size)
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("bad chunk")
    return await _read_exactly(reader, length)


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _has_ctl(text: str, allow_tab: bool = False) -> bool:
    """A control character (0x00-0x1f, 0x7f), as Go's httpguts sees one."""
    return any((ord(c) < 0x20 and not (allow_tab and c == "\t")) or c == "\x7f" for c in text)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest("bad encoding") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise BadRequest("malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest("unsupported version")
    if any(c not in _TOKEN_CHARS for c in method):
        raise BadRequest("invalid method")
    if _has_ctl(target):  # Go: "net/url: invalid control character in URL"
        raise BadRequest("invalid control character in URL")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or any(c not in _TOKEN_CHARS for c in name):
            raise BadRequest("invalid header name")
        value = value.strip(" \t")
        if _has_ctl(value, allow_tab=True):
            raise BadRequest("invalid header value")
        headers.setdefault(name.lower(), value)
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequest("missing Host header")
    return method, target, version, headers


def header_line(name: str, value: str) -> str | None:
    """``name: value`` as Go's Header.Write puts it, or None for a name Go would drop.

    Line breaks in the value become spaces and surrounding white space goes, so
    no value can start a header of its own (response splitting).
    """
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return None
    value = value.replace("\r", " ").replace("\n", " ").strip(" \t")
    return f"{name}: {value}"


def _render(response: Response, keep_alive: bool, head_only: bool) -> bytes:
    """The response's bytes. Header values are written as UTF-8 (Go writes a string's bytes);
    surrogate escapes stand for raw bytes of the request and are written back as they came."""
    status = response.status
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    if response.content_type is not None:
        lines.append(f"Content-Type: {response.content_type}")
    for name, value in response.headers:
        line = header_line(name, value)
        if line is not None:
            lines.append(line)
    lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    if status != 204 and (response.body or (response.length_header and not head_only)):
        lines.append(f"Content-Length: {len(response.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head if head_only else head + response.body


_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n400 Bad Request"
)


def _unavailable(reason: str) -> bytes:
    body = f"503 Service Unavailable: {reason}".encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body


_TOO_MANY_CONNECTIONS = _unavailable("too many API connections")
_TOO_MANY_BYTES = _unavailable("too many request bytes in flight")
_LINGER_S = 0.5


async def _answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes) -> None:
    """Write a final answer, then (as Go's closeWriteAndWait) half-close and discard what the
    client still sends for a moment, so that closing does not reset the answer away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _LINGER_S
    try:
        writer.write(answer)
        await asyncio.wait_for(writer.drain(), _LINGER_S)
        if writer.can_write_eof():
            writer.write_eof()
        while await asyncio.wait_for(reader.read(1 << 16), max(0.0, deadline - loop.time())):
            pass
    except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                           admission: Admission | None = None) -> None:
    """Answer requests on one connection until it closes or asks to."""
    admission = admission if admission is not None else Admission()
    slot = admission.admit(writer.transport)
    if slot is None:
        try:
            await _answer_and_close(reader, writer, _TOO_MANY_CONNECTIONS)
        finally:
            writer.close()
        return
    try:
        await _serve(reader, writer, handler, admission, slot)
    except (ConnectionError, asyncio.TimeoutError):
        return
    finally:
        admission.leave(slot)
        writer.close()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                 admission: Admission, slot: Slot) -> None:
    while True:
        slot.reading = True
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            return
        except asyncio.LimitOverrunError:
            writer.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                b"charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"
            )
            return
        try:
            method, target, version, headers = _parse_head(head.lstrip(b"\r\n"))
            path = _decode_path(target)
            length = _declared_length(headers)
            if not admission.reserve(slot, length):
                raise TooBusy
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await asyncio.wait_for(
                _read_body(reader, headers, length, lambda n: admission.reserve(slot, n)), BODY_TIMEOUT_S)
        except (BadRequest, asyncio.LimitOverrunError, ValueError) as err:
            log.debug("bad request: %s", err)
            writer.write(_BAD_REQUEST)
            return
        except TooBusy:
            log.warning("API request refused: %d body bytes already held", admission.body_bytes)
            admission.release(slot)
            await _answer_and_close(reader, writer, _TOO_MANY_BYTES)
            return
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            return
        slot.reading = False
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        response = await handler(Request(method, target, path, headers, body))
        del body  # the handler is done with it; the reservation ends with the answer
        writer.write(_render(response, keep_alive, head_only=(method == "HEAD")))
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT_S)
        admission.release(slot)
        if not keep_alive:
            return
