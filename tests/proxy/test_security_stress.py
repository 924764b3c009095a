"""Load-shaped probes of issue 10 against a real ``python -m lab.proxy`` process.

Each is bounded in count and time. What is measured (RSS from /proc, open-file
limits, round-trip percentiles) is a property of the server process, so the
server runs as a child process and the load comes from this one.
"""

from __future__ import annotations

import asyncio
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .helpers import port_of, start_echo
from .procproxy import ProxyProcess, request

pytestmark = [pytest.mark.security, pytest.mark.stress]


class EchoThread:
    """An asyncio echo server on its own loop in a thread of this process."""

    def __enter__(self) -> "EchoThread":
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start_echo(), self.loop).result(10)
        self.port = port_of(self.server)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- item 9: the soft open-file limit is raised to the hard one ------------------------


def _soft_limit_1024() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def _echo_all(port: int, count: int, deadline_s: float) -> int:
    """Open ``count`` connections at once, send each its number, count correct echoes."""
    socks: list[socket.socket] = []
    expected: dict[socket.socket, bytes] = {}
    received: dict[socket.socket, bytes] = {}
    selector = selectors.DefaultSelector()
    ok = 0
    try:
        for index in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            message = b"%08d" % index
            sock.sendall(message)
            sock.setblocking(False)
            expected[sock], received[sock] = message, b""
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + deadline_s
        while expected and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                try:
                    data = sock.recv(64)
                except OSError:
                    data = b""
                if data:
                    received[sock] += data
                if not data or len(received[sock]) >= 8:
                    ok += received[sock] == expected.pop(sock)
                    selector.unregister(sock)
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    return ok


def test_five_thousand_connections_work_when_started_with_a_soft_fd_limit_of_1024():
    """Issue 10 saw 4,498 of 5,000 reset (EMFILE on the upstream dial)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 12_000:
        pytest.skip(f"the hard open-file limit {hard} is below the 12,000 this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds 10,000 sockets too
    try:
        with EchoThread() as echo, ProxyProcess(preexec_fn=_soft_limit_1024) as proxy:
            port = proxy.create_proxy("many", echo.port)
            assert _echo_all(port, 5000, deadline_s=60) == 5000
            assert request(proxy.port, "GET", "/version")[0] == 200
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- item 8: caps on API connections and buffered request bodies -------------------------

BODY_BYTES = 16 << 20


def _stall_bodies(port: int, connections: int, deadline_s: float, socks: list[socket.socket]) -> tuple[int, int]:
    """Open ``connections`` API connections (into ``socks``), each declaring a 16 MiB body and
    sending all but its last byte, as fast as the server takes it. Returns (bytes sent, refused)."""
    head = (f"POST /populate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_BYTES}\r\n\r\n").encode()
    payload = memoryview(b" " * (1 << 20))
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head)
        sock.setblocking(False)
        socks.append(sock)
    remaining = {sock: BODY_BYTES - 1 for sock in socks}
    sent = refused = 0
    deadline = time.monotonic() + deadline_s
    last_progress = time.monotonic()
    while remaining and time.monotonic() < deadline and time.monotonic() - last_progress < 3:
        for sock in list(remaining):
            try:
                n = sock.send(payload[: min(len(payload), remaining[sock])])
            except BlockingIOError:
                continue
            except OSError:  # answered 503 and closed
                del remaining[sock]
                refused += 1
                continue
            sent += n
            remaining[sock] -= n
            last_progress = time.monotonic()
            if remaining[sock] == 0:
                del remaining[sock]
        time.sleep(0.001)
    return sent, refused


def test_sixty_stalled_sixteen_mib_bodies_keep_the_proxy_under_200_mb():
    """Issue 10 saw 25 MB grow to 1.01 GB; bodies wait in the server until its body timeout."""
    limit_bytes = 200_000_000
    socks: list[socket.socket] = []
    with ProxyProcess() as proxy:
        try:
            sent, refused = _stall_bodies(proxy.port, 60, 60, socks)
            peak_bytes = proxy.status_kib("VmHWM") * 1024
            status, _ = request(proxy.port, "GET", "/version", timeout_s=5)
            rss_bytes = proxy.status_kib("VmRSS") * 1024
        finally:
            for sock in socks:
                sock.close()
    print(f"sent {sent / 2**20:.0f} MiB, {refused} connections refused, "
          f"peak RSS {peak_bytes / 1e6:.0f} MB, RSS after {rss_bytes / 1e6:.0f} MB")
    assert status == 200
    assert peak_bytes < limit_bytes, f"peak RSS {peak_bytes / 1e6:.0f} MB"


# -- item 4: no toxic starves the event loop ---------------------------------------------

FLOOD = str(Path(__file__).with_name("flood.py"))
P99_BOUND_MS = 50.0

#: Every toxic type with its defaults, plus the attribute values that make it do the most work
#: per byte (1-byte slices, zero delays) or none at all (stalls, black holes, resets).
TOXICS = [
    ("slicer", {}),
    ("slicer", {"average_size": 1, "size_variation": 0, "delay": 0}),
    ("slicer", {"average_size": -5, "size_variation": 100000, "delay": -1}),
    ("latency", {}),
    ("latency", {"latency": 1, "jitter": 1000000}),
    ("bandwidth", {}),
    ("bandwidth", {"rate": 1}),
    ("bandwidth", {"rate": 1 << 40}),
    ("timeout", {}),
    ("timeout", {"timeout": 1}),
    ("slow_close", {}),
    ("reset_peer", {}),
    ("limit_data", {"bytes": 1}),
    ("noop", {}),
]


def _p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _round_trips_ms(port: int, count: int, gap_s: float) -> list[float]:
    """``count`` 64-byte round trips on one connection; a reply later than 2 s counts as 2,000 ms."""
    samples = []
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        for index in range(count):
            message = b"%064d" % index
            started = time.perf_counter()
            try:
                sock.sendall(message)
                got = b""
                while len(got) < len(message):
                    piece = sock.recv(len(message) - len(got))
                    if not piece:
                        raise ConnectionError("closed")
                    got += piece
                samples.append((time.perf_counter() - started) * 1000)
            except OSError:
                samples.append(2000.0)
                sock.close()
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            time.sleep(gap_s)
    finally:
        sock.close()
    return samples


def _lower_priority() -> None:
    """The load runs at nice 10: the test measures the proxy's fairness between its own
    connections, not how the machine shares its cores with the load generator."""
    os.nice(10)


@pytest.fixture(scope="module")
def flood_echo():
    proc = subprocess.Popen([sys.executable, FLOOD, "echo"], stdout=subprocess.PIPE, preexec_fn=_lower_priority)
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


# uvloop is the proxy's loop whenever it is installed (a dependency); the plain asyncio fallback runs in CI's
# `make test-long` (LAB_LONG_TESTS=1), after `make test`, whose 15-minute budget it does not fit (24 s).
@pytest.mark.parametrize("loop", ["uvloop"] + (["asyncio"] if os.environ.get("LAB_LONG_TESTS") == "1" else []))
def test_no_toxic_on_one_proxy_raises_another_proxys_p99_above_50_ms(flood_echo, loop):
    """Issue 10: a default slicer failed 38 of 59 round trips on an unrelated proxy (2 s timeout).

    For each toxic (on both directions of proxy A, flooded by 3 clients in another
    process), 300 round trips on proxy B, 3 ms apart; B's p99 must stay under 50 ms.
    """
    results: dict[str, float] = {}
    with EchoThread() as echo, ProxyProcess(env={"LAB_PROXY_LOOP": loop}) as proxy:
        port_a = proxy.create_proxy("flooded", flood_echo)
        port_b = proxy.create_proxy("bystander", echo.port)
        results["(no toxic, no load)"] = _p99_ms(_round_trips_ms(port_b, 300, 0.003))
        for toxic_type, attributes in [("(none)", {})] + TOXICS:
            for stream in ("upstream", "downstream") if toxic_type != "(none)" else ():
                status, body = request(proxy.port, "POST", "/proxies/flooded/toxics", {
                    "name": f"t_{stream}", "type": toxic_type, "stream": stream, "attributes": attributes})
                assert status == 200, body
            flooder = subprocess.Popen([sys.executable, FLOOD, "flood", str(port_a), "3", "4"],
                                       preexec_fn=_lower_priority)
            try:
                time.sleep(0.3)
                results[f"{toxic_type} {attributes}"] = _p99_ms(_round_trips_ms(port_b, 300, 0.003))
            finally:
                flooder.kill()
                flooder.wait(10)
            assert request(proxy.port, "POST", "/reset", timeout_s=10)[0] == 204
        assert request(proxy.port, "GET", "/version")[0] == 200
    print("\n".join(f"p99 {ms:8.1f} ms  {name}" for name, ms in results.items()))
    over = {name: round(ms, 1) for name, ms in results.items() if ms >= P99_BOUND_MS}
    assert not over, f"p99 over {P99_BOUND_MS} ms: {over}"
