"""Fuzzing the API: random methods, paths and JSON bodies never crash the server.

The only 5xx allowed is the documented listen error ("listen tcp ..."). Listen
addresses are drawn so that no host name is ever resolved: resolving one could
send a DNS query off this machine.
"""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import ThreadedServer

pytestmark = pytest.mark.property

NAMES = st.sampled_from(["a", "echo", "x y", "ü", "<b>", "a/b", "%2F", "..", "toxics", ""]) | st.text(max_size=8)
SEGMENTS = st.sampled_from(["proxies", "toxics", "version", "reset", "populate", "metrics", "", ".", "..",
                            "%20", "%2F", "%zz", "a%00b"]) | NAMES.map(lambda n: n.replace("/", "%2F"))
PATHS = st.lists(SEGMENTS, min_size=0, max_size=5).map(lambda parts: "/" + "/".join(parts)) | st.sampled_from(
    ["/proxies", "/proxies/a", "/proxies/a/toxics", "/proxies/a/toxics/t", "/populate", "/reset", "/version"])
METHODS = st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "get", "BREW"])

SAFE_LISTEN = st.one_of(
    st.just("127.0.0.1:0"),
    st.integers(0, 70000).map(lambda p: f"127.0.0.1:{p}"),
    st.sampled_from(["", ":", "127.0.0.1", "127.0.0.1:", "[::1]:0", "[::1", "1:2:3", "127.0.0.1:http",
                     "127.0.0.1:notaport", "127.0.0.1:-1", "[127.0.0.1]:0", "localhost:0"]),
)
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=10)
KEYS = st.text(max_size=10).filter(lambda k: k.casefold() not in {"listen", "upstream"})
ANY_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                        max_leaves=12)
ATTRIBUTES = st.dictionaries(st.sampled_from(["latency", "jitter", "rate", "timeout", "bytes", "delay", "average_size",
                                              "size_variation", "x"]), SCALARS, max_size=4)
TOXIC = st.fixed_dictionaries({}, optional={
    "name": NAMES, "type": st.sampled_from(["latency", "bandwidth", "timeout", "reset_peer", "slicer", "slow_close",
                                            "limit_data", "noop", "bogus", ""]) | SCALARS,
    "stream": st.sampled_from(["upstream", "downstream", "UpStream", "sideways"]) | SCALARS,
    "toxicity": SCALARS, "attributes": ATTRIBUTES | SCALARS})
PROXY = st.fixed_dictionaries({}, optional={
    "name": NAMES | SCALARS, "listen": SAFE_LISTEN, "upstream": st.just("127.0.0.1:1") | SCALARS,
    "enabled": st.booleans() | SCALARS, "Logger": ANY_JSON})
BODIES = st.one_of(
    ANY_JSON.map(json.dumps),
    TOXIC.map(json.dumps),
    PROXY.map(json.dumps),
    st.lists(PROXY, max_size=3).map(json.dumps),
    st.text(max_size=30),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)


def raw_request(port: int, method: str, path: str, body: str) -> tuple[int, bytes]:
    data = body.encode("utf-8", "surrogatepass")
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(data)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("utf-8", "surrogatepass") + data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture(scope="module")
def server():
    with ThreadedServer(echo=False) as running:
        yield running


def _cleanup(server: ThreadedServer) -> None:
    async def drop_all() -> None:
        for name in list(server.server.collection.proxies):
            await server.server.collection.remove(name)

    server.call(drop_all())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=st.lists(st.tuples(METHODS, PATHS, BODIES), min_size=1, max_size=4))
def test_no_request_crashes_the_server(server, requests):
    try:
        for method, path, body in requests:
            status, payload = raw_request(server.port, method, path, body)
            if status >= 500:
                assert status == 500 and b"listen tcp" in payload, (method, path, body, payload)
        assert raw_request(server.port, "GET", "/version", "")[0] == 200
    finally:
        _cleanup(server)


@settings(max_examples=150, deadline=None)
@given(body=TOXIC.map(json.dumps) | BODIES, patch=BODIES)
def test_toxic_create_and_update_never_500(server, body, patch):
    try:
        assert raw_request(server.port, "POST", "/proxies", json.dumps(
            {"name": "f", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}))[0] == 201
        status, payload = raw_request(server.port, "POST", "/proxies/f/toxics", body)
        assert status in (200, 400, 409), payload
        if status == 200:
            name = json.loads(payload)["name"]
            from urllib.parse import quote
            status, payload = raw_request(server.port, "PATCH", f"/proxies/f/toxics/{quote(name, safe='')}", patch)
            assert status in (200, 400, 404), payload
    finally:
        _cleanup(server)
