"""Fuzzing the API at the socket: request lines, headers and bodies as raw bytes.

Whatever arrives, the server answers with well-formed HTTP/1.1 responses (no
header line an attacker could have shaped, a body exactly as long as declared)
or closes the connection cleanly, and keeps answering ``/version`` afterwards.
Name lookups are stubbed: only ``localhost`` resolves, so no query leaves the
machine whatever the fuzzer puts in a body.
"""

from __future__ import annotations

import re
import socket
from http import HTTPStatus
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import ThreadedServer

pytestmark = [pytest.mark.security, pytest.mark.property]

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ([^\r\n]*)")

# -- what the fuzzer sends ---------------------------------------------------------

NASTY = st.sampled_from(["\r\n", "\r", "\n", "\x00", "\x7f", "%0d%0a", "%0D%0A", "%00", "%E2%80%AE", "%zz", "%",
                         "\u202e", "é", " ", "\t", "..", ".", "/", "//", "?", "#", "Set-Cookie: x=1", "%2F"])
SEGMENT = st.sampled_from(["proxies", "toxics", "version", "reset", "populate", "metrics", "a", "p"]) | NASTY | \
    st.text(max_size=6)
#: Paths that are redirected (they hold "..") and whose Location carries what was percent-encoded.
REDIRECTED = st.lists(st.sampled_from(["\r", "\n", "\r\n", "Set-Cookie: a=1", "é", "\u202e", "\x00", "version", ":",
                                       " ", "?"]) | st.characters(exclude_categories=("Cs",)), max_size=6).map(
    lambda parts: "/a/../" + quote("".join(parts), safe="/:"))
TARGET = st.one_of(
    REDIRECTED,
    st.lists(SEGMENT, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    st.lists(SEGMENT, max_size=4).map(lambda parts: "/a/../" + "".join(parts)),
    st.sampled_from(["*", "", "http://x/version", "http://x/a/../version?q=%0d%0a", "/version?%0d%0a=1"]),
    st.text(max_size=20),
)
METHOD = st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "get", "BREW", "", "G T"]) | \
    st.text(max_size=6)
VERSION = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 ", "http/1.1", "", "HTTP/9.9"])
HEADER_NAME = st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Expect", "Connection", "User-Agent",
                               "Content-Type", "X-A", "", " Host", "Host ", "Bad Name", "X\x00"]) | st.text(max_size=8)
HEADER_VALUE = st.one_of(
    st.sampled_from(["x", "0", "5", "-1", "1e3", "99999999999999999999", "chunked", "gzip, chunked", "100-continue",
                     "close", "keep-alive", "Mozilla/5.0", "curl/8", "application/json", ""]),
    NASTY, st.text(max_size=20), st.text(max_size=3).map(lambda t: t * 300),
)
HEADERS = st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=6)
CHUNKED_BODY = st.lists(st.binary(max_size=20), max_size=3).map(
    lambda chunks: b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")
BODY = st.one_of(
    st.binary(max_size=300),
    CHUNKED_BODY,
    st.sampled_from([b"", b"{}", b"[]", b"null", b'{"name":"f","upstream":"127.0.0.1:1","listen":"127.0.0.1:0"}',
                     b'[{"name":"g","upstream":"127.0.0.1:1","listen":"localhost:0"}]',
                     b'{"type":"slicer","attributes":{}}', b'{"attributes":{"latency":-1}}', b"\xff\xfe",
                     b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"]),
)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@st.composite
def requests(draw) -> tuple[str, bytes]:
    """(the first request's method, the bytes to send). Sometimes pure garbage."""
    if draw(st.integers(0, 9)) == 0:
        return "", draw(st.binary(max_size=400))
    method = draw(METHOD)
    head = _encode(f"{method} {draw(TARGET)} {draw(VERSION)}")
    headers = draw(HEADERS)
    if draw(st.booleans()):
        headers = [("Host", "127.0.0.1")] + headers
    body = draw(BODY)
    if draw(st.booleans()):
        headers.append(("Content-Length", str(len(body))))
    lines = [head] + [_encode(f"{name}: {value}") for name, value in headers]
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
    return method, eol.join(lines) + eol + eol + body


# -- what the server must answer ---------------------------------------------------


def check_responses(raw: bytes, first_method: str) -> list[int]:
    """Parse ``raw`` as a sequence of HTTP/1.1 responses, failing on anything malformed."""
    statuses = []
    offset = 0
    first = True
    while offset < len(raw):
        head_end = raw.find(b"\r\n\r\n", offset)
        assert head_end >= 0, f"unterminated head: {raw[offset:offset + 200]!r}"
        lines = raw[offset:head_end].split(b"\r\n")
        match = re.fullmatch(rb"HTTP/1\.1 (\d{3}) (.+)", lines[0])
        assert match, f"bad status line {lines[0]!r}"
        status = int(match.group(1))
        assert match.group(2).decode() == HTTPStatus(status).phrase, lines[0]
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            header = HEADER_LINE.fullmatch(line)
            assert header, f"malformed or injected header line {line!r}"
            name = header.group(1).lower()
            assert name not in (b"set-cookie", b"refresh"), f"a header the server never sends: {line!r}"
            headers[name] = header.group(2)
        offset = head_end + 4
        statuses.append(status)
        if 100 <= status < 200:
            continue
        no_body = status in (204, 304) or (first and first_method == "HEAD")
        first = False
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            if no_body:
                continue
            assert len(raw) - offset >= length, "body shorter than its Content-Length"
            offset += length
        elif not no_body:
            assert headers.get(b"connection") == b"close", "a body with neither length nor close"
            return statuses  # the body runs to the end of the connection
    return statuses


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before taking everything
        raw = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break  # closed with unread input: what it sent before the reset is checked
            if not chunk:
                break
            raw += chunk
    return raw


def version_answers(port: int) -> bool:
    raw = exchange(port, b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return raw.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.fixture(scope="module")
def server():
    real = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "::1", None):
            raise socket.gaierror(socket.EAI_NONAME, "the fuzz test resolves only localhost")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = local_only
    try:
        with ThreadedServer(echo=False) as running:
            yield running
    finally:
        socket.getaddrinfo = real


def _cleanup(server: ThreadedServer) -> None:
    async def drop_all() -> None:
        for name in list(server.server.collection.proxies):
            await server.server.collection.remove(name)

    server.call(drop_all())


@settings(max_examples=400, deadline=5000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests())
def test_any_bytes_get_well_formed_answers_and_the_server_stays_up(server, request):
    method, data = request
    try:
        statuses = check_responses(exchange(server.port, data), method)
        assert all(status < 500 or status == 503 for status in statuses), statuses
        assert version_answers(server.port)
    finally:
        _cleanup(server)


def test_the_response_checker_rejects_an_injected_header():
    injected = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /version\r\nSet-Cookie: pwned=1\r\n\r\n"
    with pytest.raises(AssertionError):
        check_responses(injected, "GET")
    with pytest.raises(AssertionError):
        check_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "GET")
