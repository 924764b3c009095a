"""Proxy mutants (lab/proxy/mutants.py): each really breaks its one property, in a real lab.proxy process.

Every test runs the same exchange against the shipped proxy and against the mutant, so it shows both that
the property holds normally and that the mutant breaks it. Timings carry explicit tolerances: the
behaviour under test is about time (a delay halved or doubled), and each bound sits half a delay away
from both the right and the mutated value.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest

from lab.proxy import mutants
from lab.proxy.toxics.latency import Latency

from .procproxy import REPO, ProxyProcess, request

pytestmark = pytest.mark.proxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A blocking echo server on loopback (one thread per connection), stopped after the test."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def _proxy(api: ProxyProcess, upstream: int) -> int:
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    port = listen.getsockname()[1]
    listen.close()
    status, body = request(api.port, "POST", "/proxies",
                           {"name": "echo", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream}"})
    assert status == 201, body
    return port


def _toxic(api: ProxyProcess, type_: str, stream: str = "downstream", **attributes: int) -> None:
    status, body = request(api.port, "POST", "/proxies/echo/toxics",
                           {"name": "t", "type": type_, "stream": stream, "attributes": attributes})
    assert status == 200, body


def _round_trip_s(sock: socket.socket, payload: bytes) -> float:
    started = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "the proxy closed the connection"
        got += chunk
    return time.monotonic() - started


def _with(mutant: str | None) -> ProxyProcess:
    return ProxyProcess(env={mutants.ENV_VAR: mutant} if mutant else {mutants.ENV_VAR: ""})


@pytest.mark.parametrize(("mutant", "low_s", "high_s"), [(None, 0.2, 0.3), ("latency_halved", 0.0, 0.15)])
def test_latency_halved_delays_by_half(echo_port, mutant, low_s, high_s):
    with _with(mutant) as api:
        port = _proxy(api, echo_port)
        _toxic(api, "latency", latency=200)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            took = _round_trip_s(sock, b"x")
    assert low_s <= took < high_s, f"round trip {took * 1000:.0f} ms through a 200 ms latency toxic ({mutant})"


@pytest.mark.parametrize(("mutant", "low_s", "high_s"), [(None, 0.2, 0.3), ("direction_ignored", 0.4, 0.6)])
def test_direction_ignored_delays_both_ways(echo_port, mutant, low_s, high_s):
    with _with(mutant) as api:
        port = _proxy(api, echo_port)
        _toxic(api, "latency", "downstream", latency=200)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            took = _round_trip_s(sock, b"x")
    assert low_s <= took < high_s, f"round trip {took * 1000:.0f} ms through a 200 ms downstream toxic ({mutant})"


@pytest.mark.parametrize(("mutant", "low_s", "high_s"), [(None, 0.4, 0.6), ("bandwidth_owed_halved", 0.1, 0.3)])
def test_bandwidth_owed_halved_passes_bytes_twice_as_fast(echo_port, mutant, low_s, high_s):
    with _with(mutant) as api:
        port = _proxy(api, echo_port)
        _toxic(api, "bandwidth", rate=10)  # 10 KB/s: 5000 bytes owe 0.5 s
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            took = _round_trip_s(sock, b"x" * 5000)
    assert low_s <= took < high_s, f"5000 bytes at 10 KB/s took {took * 1000:.0f} ms ({mutant})"


@pytest.mark.parametrize(("mutant", "ending"), [(None, "reset"), ("reset_peer_sends_fin", "fin")])
def test_reset_peer_sends_fin_instead_of_rst(echo_port, mutant, ending):
    with _with(mutant) as api:
        port = _proxy(api, echo_port)
        _toxic(api, "reset_peer", "upstream", timeout=0)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"x")
            try:
                seen = "fin" if sock.recv(10) == b"" else "data"
            except ConnectionResetError:
                seen = "reset"
    assert seen == ending


@pytest.mark.parametrize(("mutant", "low_s", "high_s"), [(None, 0.0, 0.15), ("toxic_removal_spares_open_links",
                                                                            0.3, 0.45)])
def test_toxic_removal_spares_open_links_keeps_the_toxic_on_them(echo_port, mutant, low_s, high_s):
    with _with(mutant) as api:
        port = _proxy(api, echo_port)
        _toxic(api, "latency", latency=300)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            _round_trip_s(sock, b"x")  # the link exists and carries the toxic
            status, body = request(api.port, "DELETE", "/proxies/echo/toxics/t")
            assert status == 204, body
            assert request(api.port, "GET", "/proxies/echo/toxics")[1] == b"[]"  # the API shows it gone either way
            took = _round_trip_s(sock, b"y")
    assert low_s <= took < high_s, f"round trip {took * 1000:.0f} ms after the 300 ms toxic was removed ({mutant})"


def test_an_unknown_proxy_mutant_stops_the_server_with_the_known_names():
    result = subprocess.run([sys.executable, "-m", "lab.proxy", "-port", "0"], cwd=REPO, capture_output=True,
                            text=True, timeout=30, env={"PATH": "", mutants.ENV_VAR: "nope"})
    assert result.returncode == 2
    assert "unknown proxy mutant 'nope'" in result.stderr and "latency_halved" in result.stderr


def test_a_mutant_patching_a_vanished_attribute_patches_nothing(monkeypatch):
    original = Latency.delay_s
    stale = mutants.ProxyMutant("stale", "test", ((Latency, "delay_s", lambda o: None), (Latency, "gone", lambda o: o)))
    monkeypatch.setitem(mutants.MUTANTS, "stale", stale)
    with pytest.raises(mutants.StalePatch, match="Latency.gone"):
        mutants.apply("stale")
    assert Latency.delay_s is original
