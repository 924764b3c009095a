"""Load-shaped probes of issue 10 against a real ``python -m lab.proxy`` process.

Each is bounded in count and time. What is measured (RSS from /proc, open-file
limits, round-trip percentiles) is a property of the server process, so the
server runs as a child process and the load comes from this one.
"""

from __future__ import annotations

import asyncio
import resource
import selectors
import socket
import threading
import time

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
