"""The proxy API under attack: each probe of issue 10 kept as a regression test.

Every test here drives a real server over real loopback sockets. Host names are
either ``localhost`` or answered by a resolver stubbed in this process, so no
lookup ever leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time

import pytest

from lab.proxy import Context, ProxyServer
from lab.proxy.cli import parse_args

from .helpers import ThreadedServer, http, port_of, start_echo
from .procproxy import request

pytestmark = pytest.mark.security


async def raw(port: int, data: bytes, timeout_s: float = 10.0) -> bytes:
    """Send ``data`` as is, half-close, and return everything the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


def head_lines(response: bytes) -> list[str]:
    return response.partition(b"\r\n\r\n")[0].decode("utf-8").split("\r\n")


@pytest.fixture
async def server():
    async with ProxyServer("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def loopback_only():
    async with ProxyServer("127.0.0.1", 0, Context(allow_remote_listen=False)) as running:
        yield running


# -- item 3: response splitting ---------------------------------------------------


async def test_an_encoded_crlf_in_a_redirected_path_cannot_add_a_header(server):
    target = "/a/..%2Fversion%0d%0aSet-Cookie:%20pwned=1%0d%0a"
    response = await raw(server.address[1], f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    lines = head_lines(response)
    assert lines[0] == "HTTP/1.1 301 Moved Permanently"
    assert not any(line.lower().startswith("set-cookie") for line in lines), lines
    # As Go's url.URL.String(): the cleaned path, percent-escaped again.
    assert "Location: /version%0D%0ASet-Cookie:%20pwned=1%0D%0A" in lines


async def test_a_non_latin1_character_in_a_redirected_path_gets_an_answer(server):
    response = await raw(server.address[1], b"GET /a/../%E2%80%AE HTTP/1.1\r\nHost: x\r\n\r\n")
    lines = head_lines(response)
    assert lines[0] == "HTTP/1.1 301 Moved Permanently"
    assert "Location: /%E2%80%AE" in lines


async def test_the_query_of_a_redirect_keeps_no_line_break(server):
    response = await raw(server.address[1], b"GET /a/../version?x=%0d%0aSet-Cookie:1 HTTP/1.1\r\nHost: x\r\n\r\n")
    lines = head_lines(response)
    assert "Location: /version?x=%0d%0aSet-Cookie:1" in lines
    assert not any(line.lower().startswith("set-cookie") for line in lines)


@pytest.mark.parametrize("request_line", [
    b"GET /ver\x01sion HTTP/1.1", b"GET /version\x7f HTTP/1.1", b"GET /a\nSet-Cookie: x HTTP/1.1"])
async def test_control_characters_in_the_request_target_are_a_bad_request(server, request_line):
    response = await raw(server.address[1], request_line + b"\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")


@pytest.mark.parametrize("header", [b"X-A: 1\x00", b"X-A: a\rb", b"X\x01A: 1"])
async def test_control_characters_in_request_headers_are_a_bad_request(server, header):
    response = await raw(server.address[1], b"GET /version HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_header_values_are_written_without_line_breaks():
    from lab.proxy.http import Response, _render

    head = _render(Response(301, headers=[("Location", "/x\r\nSet-Cookie: a=1\n")]), True, False)
    lines = head.decode().split("\r\n")
    assert "Location: /x  Set-Cookie: a=1" in lines
    assert not any(line.startswith("Set-Cookie") for line in lines)


# -- item 13: names that could never be used again ---------------------------------


BAD_NAMES = [".", "..", "a/b", "/", "a\r\nb", "a\nb", "a\x00b", "\x7f", "n" * 256]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_unusable_proxy_names_are_refused_with_400(server, name):
    port = server.address[1]
    status, _, body = await http(port, "POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                                            "upstream": "127.0.0.1:1"})
    assert status == 400, body
    assert "proxy name" in json.loads(body)["error"]
    status, _, body = await http(port, "POST", "/populate", [{"name": name, "listen": "127.0.0.1:0",
                                                              "upstream": "127.0.0.1:1"}])
    assert status == 400, body
    assert "proxy name" in json.loads(body)["error"]
    assert json.loads((await http(port, "GET", "/proxies"))[2]) == {}


@pytest.mark.parametrize("name", ["a.b", "...", "ü-名前", "n" * 255, "a b", "a%2Fb"])
async def test_usable_names_still_work_and_can_be_deleted(server, name):
    from urllib.parse import quote

    port = server.address[1]
    status, _, body = await http(port, "POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                                            "upstream": "127.0.0.1:1"})
    assert status == 201, body
    assert (await http(port, "DELETE", "/proxies/" + quote(name, safe="")))[0] == 204


@pytest.mark.parametrize("name", [".", "..", "a/b", "a\r\nb", "t" * 256], ids=repr)
async def test_unusable_toxic_names_are_refused_with_400(server, name):
    port = server.address[1]
    assert (await http(port, "POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0",
                                                  "upstream": "127.0.0.1:1"}))[0] == 201
    status, _, body = await http(port, "POST", "/proxies/p/toxics", {"name": name, "type": "latency"})
    assert status == 400, body
    assert "toxic name" in json.loads(body)["error"]


# -- off-loopback listening ----------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0", "[2001:db8::1]:0", "[::ffff:192.0.2.1]:0"])
async def test_loopback_only_refuses_listen_addresses_off_loopback(loopback_only, listen):
    port = loopback_only.address[1]
    status, _, body = await http(port, "POST", "/proxies", {"name": "p", "listen": listen,
                                                            "upstream": "127.0.0.1:25432"})
    assert status == 403, body
    assert "loopback" in json.loads(body)["error"] and listen in json.loads(body)["error"]
    assert json.loads((await http(port, "GET", "/proxies"))[2]) == {}


async def test_loopback_only_refuses_moving_a_proxy_off_loopback(loopback_only):
    port = loopback_only.address[1]
    assert (await http(port, "POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0",
                                                  "upstream": "127.0.0.1:1"}))[0] == 201
    status, _, body = await http(port, "POST", "/proxies/p", {"listen": "0.0.0.0:0"})
    assert status == 403, body
    status, _, body = await http(port, "POST", "/populate", [{"name": "q", "listen": "0.0.0.0:0",
                                                              "upstream": "127.0.0.1:1"}])
    assert status == 403, body


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.0.0.2:0", "[::1]:0", "localhost:0"])
async def test_loopback_only_accepts_loopback_addresses(loopback_only, listen):
    port = loopback_only.address[1]
    status, _, body = await http(port, "POST", "/proxies", {"name": "p", "listen": listen,
                                                            "upstream": "127.0.0.1:1"})
    if status == 500 and b"cannot assign" in body:
        pytest.skip(f"{listen} is not configured on this host")
    assert status == 201, body


@pytest.mark.parametrize("listen", [":0", ""])
async def test_loopback_only_binds_an_empty_host_on_loopback(loopback_only, listen):
    port = loopback_only.address[1]
    status, _, body = await http(port, "POST", "/proxies", {"name": "p", "listen": listen,
                                                            "upstream": "127.0.0.1:1"})
    assert status == 201, body
    host, _, bound_port = json.loads(body)["listen"].rpartition(":")
    assert host == "127.0.0.1" and int(bound_port) > 0


async def test_by_default_the_standalone_proxy_listens_where_it_is_told(server):
    status, _, body = await http(server.address[1], "POST", "/proxies", {"name": "p", "listen": "0.0.0.0:0",
                                                                         "upstream": "127.0.0.1:1"})
    assert status == 201, body
    assert json.loads(body)["listen"].startswith("[::]:")


async def test_loopback_only_refuses_a_name_that_resolves_off_loopback(loopback_only, monkeypatch):
    real = socket.getaddrinfo

    def stub(host, *args, **kwargs):
        if host == "public.lab.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stub)
    status, _, body = await http(loopback_only.address[1], "POST", "/proxies", {
        "name": "p", "listen": "public.lab.test:0", "upstream": "127.0.0.1:1"})
    assert status == 403, body


def test_the_command_line_flag_turns_remote_listening_off():
    assert parse_args([]).allow_remote_listen is True
    assert parse_args(["-allow-remote-listen=false"]).allow_remote_listen is False


def test_the_stack_starts_its_proxy_with_remote_listening_refused(tmp_path, monkeypatch):
    from lab.config import Settings
    from lab.stack import procs
    from lab.stack.proxy import LocalProxy

    captured = {}

    def fake_spawn(argv, log, **kwargs):
        captured["argv"] = argv
        return None, None

    monkeypatch.setattr(procs, "spawn", fake_spawn)
    LocalProxy(Settings.from_env({"LAB_STATE_DIR": str(tmp_path)})).start(tmp_path / "log")
    assert "-allow-remote-listen=false" in captured["argv"]


# -- item 7: host names resolve off the event loop, within a bound ----------------------


@pytest.fixture
def slow_resolver(monkeypatch):
    """``slow.lab.test`` answers 127.0.0.1 after ``release`` is set (or 30 s); others resolve as usual."""
    release = threading.Event()
    real = socket.getaddrinfo

    def stub(host, *args, **kwargs):
        if host == "slow.lab.test":
            release.wait(30)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stub)
    yield release
    release.set()


async def _round_trip_ms(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.perf_counter()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        return (time.perf_counter() - started) * 1000
    finally:
        writer.close()


async def test_a_slow_name_lookup_does_not_stall_other_proxies(slow_resolver):
    echo = await start_echo()
    async with ProxyServer("127.0.0.1", 0, Context(resolve_timeout_s=5.0)) as server:
        api = server.address[1]
        status, _, body = await http(api, "POST", "/proxies", {"name": "fast", "listen": "127.0.0.1:0",
                                                               "upstream": f"127.0.0.1:{port_of(echo)}"})
        fast_port = int(json.loads(body)["listen"].rsplit(":", 1)[1])
        creating = asyncio.create_task(http(api, "POST", "/proxies", {
            "name": "slow", "listen": "slow.lab.test:0", "upstream": f"127.0.0.1:{port_of(echo)}"}))
        try:
            await asyncio.sleep(0.2)  # the lookup is under way
            # The round trip is measured in this process, on the server's own loop: a lookup
            # on that loop would hold it until released. Tolerance: 500 ms against a 30 s stall.
            assert not creating.done()
            assert await asyncio.wait_for(_round_trip_ms(fast_port), 5) < 500
            assert (await http(api, "GET", "/version", timeout=2))[0] == 200
        finally:
            slow_resolver.set()
        status, _, body = await creating
        assert status == 201, body
        assert json.loads(body)["listen"].startswith("127.0.0.1:")
    echo.close()


async def test_a_name_lookup_that_never_answers_fails_within_the_bound(slow_resolver):
    async with ProxyServer("127.0.0.1", 0, Context(resolve_timeout_s=0.5)) as server:
        started = time.monotonic()
        try:
            status, _, body = await http(server.address[1], "POST", "/proxies", {
                "name": "slow", "listen": "slow.lab.test:0", "upstream": "127.0.0.1:1"})
        finally:
            slow_resolver.set()  # free the worker thread before the loop shuts its executor down
        elapsed_s = time.monotonic() - started
        assert status == 500, body
        assert json.loads(body)["error"] == "listen tcp: lookup slow.lab.test: i/o timeout"
        assert elapsed_s < 5  # bound 0.5 s; generous tolerance for a loaded machine


async def test_localhost_still_resolves():
    async with ProxyServer("127.0.0.1", 0) as server:
        status, _, body = await http(server.address[1], "POST", "/proxies", {
            "name": "p", "listen": "localhost:0", "upstream": "127.0.0.1:1"})
        assert status == 201, body
        assert json.loads(body)["listen"].startswith("127.0.0.1:")


# -- item 5: every API call is answered, even while its links are torn down -------------

_LINGER_ZERO = struct.pack("ii", 1, 0)


def _churn(port: int, stop: threading.Event, open_links: int = 48) -> int:
    """Keep ``open_links`` connections through the proxy, resetting the oldest and opening a new one."""
    links: list[socket.socket] = []
    resets = 0
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"x" * 256)
            links.append(sock)
        except OSError:
            pass
        if len(links) >= open_links:
            oldest = links.pop(0)
            oldest.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            oldest.close()
            resets += 1
        time.sleep(0.002)  # about 500 resets/s per thread: load, not a flood the test itself drowns in
    for sock in links:
        sock.close()
    return resets


def _best_effort_delete(api: int) -> None:
    try:
        request(api, "DELETE", "/proxies/p/toxics/lat", timeout_s=5)
    except (OSError, IndexError, ValueError):
        pass


@pytest.mark.stress
def test_toxic_updates_and_removals_are_answered_while_clients_reset():
    """Issue 10 saw 1.7% of such calls unanswered; here up to 400 calls against links reset all along."""
    failures: list[str] = []
    calls = 0
    with ThreadedServer() as threaded:
        api = threaded.port
        status, body = request(api, "POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0",
                                                         "upstream": f"127.0.0.1:{threaded.echo_port}"})
        proxy_port = int(json.loads(body)["listen"].rsplit(":", 1)[1])
        stop = threading.Event()
        churners = [threading.Thread(target=_churn, args=(proxy_port, stop)) for _ in range(2)]
        for thread in churners:
            thread.start()
        try:
            deadline = time.monotonic() + 20
            toxic = {"name": "lat", "type": "latency", "stream": "downstream", "attributes": {"latency": 20}}
            while calls < 400 and time.monotonic() < deadline:
                for method, path, body, expected in (
                    ("POST", "/proxies/p/toxics", toxic, 200),
                    ("POST", "/proxies/p/toxics/lat", {"attributes": {"latency": 5}}, 200),
                    ("POST", "/proxies/p/toxics/lat", {"attributes": {"latency": 1}}, 200),
                    ("DELETE", "/proxies/p/toxics/lat", None, 204),
                ):
                    calls += 1
                    try:
                        status, answer = request(api, method, path, body, timeout_s=5)
                    except (OSError, IndexError, ValueError) as err:
                        failures.append(f"{method} {path}: no answer ({type(err).__name__})")
                        _best_effort_delete(api)
                        break
                    if status != expected:
                        failures.append(f"{method} {path}: {status} {answer[:100]!r}")
                        _best_effort_delete(api)
                        break
        finally:
            stop.set()
            for thread in churners:
                thread.join(10)
        assert request(api, "GET", "/version")[0] == 200
    assert not failures, f"{len(failures)} of {calls} calls got no right answer: {failures[:3]}"
    assert calls >= 40  # before the fix, most rounds lost an answer within the first few calls


# -- item 8: caps on API connections and buffered bodies (memory is measured in test_security_stress) --


async def test_stalled_half_sent_requests_cannot_lock_the_api_out():
    from lab.proxy.admission import Admission

    async with ProxyServer("127.0.0.1", 0, admission=Admission(max_connections=8)) as server:
        port = server.address[1]
        stalled = []
        for _ in range(40):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n")  # never finished
            stalled.append(writer)
        await asyncio.sleep(0.1)
        assert server.admission.connections <= 8
        status, _, body = await http(port, "GET", "/version", timeout=5)
        assert status == 200, body
        assert server.admission.evicted >= 32
        for writer in stalled:
            writer.close()


async def test_a_body_that_does_not_fit_in_the_budget_is_refused_before_it_is_read():
    from lab.proxy.admission import Admission

    async with ProxyServer("127.0.0.1", 0, admission=Admission(max_body_bytes=1000)) as server:
        port = server.address[1]
        _, holder = await asyncio.open_connection("127.0.0.1", port)
        holder.write(b"POST /populate HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n[")
        await asyncio.sleep(0.1)
        assert server.admission.body_bytes == 800
        status, headers, body = await http(port, "POST", "/populate", b"[" + b" " * 498 + b"]")
        assert status == 503, body
        assert b"too many request bytes" in body and headers.get("retry-after") == "1"
        holder.close()
        await asyncio.sleep(0.1)
        assert server.admission.body_bytes == 0
        status, _, body = await http(port, "POST", "/populate", b"[" + b" " * 498 + b"]")
        assert status == 201, body
        assert server.admission.body_bytes == 0


async def test_when_every_connection_is_busy_a_new_one_gets_503(slow_resolver):
    from lab.proxy.admission import Admission

    async with ProxyServer("127.0.0.1", 0, admission=Admission(max_connections=1)) as server:
        port = server.address[1]
        busy = asyncio.create_task(http(port, "POST", "/proxies", {  # busy in its handler: a slow lookup
            "name": "slow", "listen": "slow.lab.test:0", "upstream": "127.0.0.1:1"}, timeout=10))
        try:
            await asyncio.sleep(0.2)
            status, _, body = await http(port, "GET", "/version", timeout=5)
            assert status == 503 and b"too many API connections" in body
        finally:
            slow_resolver.set()
        assert (await busy)[0] == 201
