"""1,000 concurrent connections through one proxy while a toxic is added and removed."""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time

import pytest

from lab.proxy import ProxyServer

from .helpers import http

pytestmark = pytest.mark.stress

CONNECTIONS = 1000
LATENCY_MS = 50
PACE_S = 0.2


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _echo(reader, writer):
    try:
        while data := await reader.read(4096):
            writer.write(data)
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _until(condition, limit_s: float) -> None:
    """Wait until ``condition()`` holds, checking ten times a second, for at most ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def test_thousand_connections_with_a_toxic_added_and_removed_under_load():
    _raise_fd_limit(4 * CONNECTIONS + 512)
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0, backlog=4096)
    async with ProxyServer("127.0.0.1", 0) as server:
        api = server.address[1]
        _, _, body = await http(api, "POST", "/proxies", {
            "name": "load", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.sockets[0].getsockname()[1]}"})
        port = int(json.loads(body)["listen"].rsplit(":", 1)[1])
        conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)))
        stop = asyncio.Event()
        pacing = random.Random(1)
        samples: list[list[tuple[float, float]]] = [[] for _ in range(CONNECTIONS)]
        errors: list[str] = []

        async def worker(index: int, reader, writer) -> None:
            payload = f"{index:08d}".encode() * 8  # 64 bytes, unique per connection
            while not stop.is_set():
                started = time.monotonic()
                writer.write(payload)
                try:
                    got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as err:
                    errors.append(f"{index}: {err!r}")
                    return
                if got != payload:
                    errors.append(f"{index}: got {got[:16]!r}")
                    return
                samples[index].append((started, time.monotonic() - started))
                # clients, proxy and echo share one loop: pace, with jitter so released herds spread out
                await asyncio.sleep(pacing.uniform(0.5 * PACE_S, 1.5 * PACE_S))

        links = server.collection.get("load").links
        deadline = time.monotonic() + 20
        while len(links) < CONNECTIONS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(links) == CONNECTIONS
        tasks = [asyncio.create_task(worker(i, r, w)) for i, (r, w) in enumerate(conns)]
        await asyncio.sleep(1.0)
        status, _, _ = await http(api, "POST", "/proxies/load/toxics",
                                  {"name": "lag", "type": "latency", "attributes": {"latency": LATENCY_MS}})
        assert status == 200
        toxic_on = time.monotonic()
        settled = toxic_on + 0.5  # round trips that started well after the toxic was in place
        # progress, not a fixed sleep, decides how long each phase lasts: on a loaded machine a
        # connection may need longer than a second for a whole round trip under the toxic
        await _until(lambda: all(any(start >= settled for start, _ in conn) for conn in samples), 60)
        toxic_off = time.monotonic()
        assert (await http(api, "DELETE", "/proxies/load/toxics/lag"))[0] == 204
        removed = time.monotonic()  # every link has dropped the toxic once DELETE has answered
        # a loaded loop can stretch any one round trip past the latency: wait (bounded) until each
        # connection has shown one shorter than it, which a toxic left in place would never allow
        await _until(lambda: all(any(start > removed and rtt < LATENCY_MS / 1000 for start, rtt in conn)
                                 for conn in samples), 60)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for _, writer in conns:
            writer.close()

    echo.close()
    assert errors == []
    during = [[rtt for start, rtt in conn if settled <= start and start + rtt <= toxic_off] for conn in samples]
    assert all(during), "every open connection must see the toxic"
    assert min(rtt for conn in during for rtt in conn) >= LATENCY_MS / 1000
    # With the toxic no round trip can be shorter than its latency; once it is removed every
    # connection must show shorter ones (medians mislead: the released herd arrives in bursts).
    after = [[rtt for start, rtt in conn if start > removed] for conn in samples]
    assert all(conn and min(conn) < LATENCY_MS / 1000 for conn in after)
