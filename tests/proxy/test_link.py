"""A link's own behaviour on real loopback sockets, whatever the toxic: the pass-through path,
half-closes, toxics changed on open connections, proxies disabled under their connections,
unreachable upstreams, backpressure, and seeded toxicity rolls."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from lab.proxy import Context, ProxyServer

from .helpers import free_port, http, port_of, start_echo
from .toxiclab import SLACK_S, Lab, connect, outcome, round_trip, running_lab


@pytest.fixture
async def lab():
    async with running_lab() as lab:
        yield lab


async def test_no_toxic_echoes_at_once(lab):
    reader, writer = await connect(await lab.proxy())
    assert await round_trip(reader, writer) < 0.05
    writer.close()


async def test_half_close_without_toxics_is_passed_on_at_once(lab):
    reader, writer = await connect(await lab.proxy())
    await round_trip(reader, writer, b"hi")
    writer.write_eof()
    state, _, elapsed = await outcome(reader, 3.0)
    assert state == "eof" and elapsed < 0.2


async def test_half_closed_client_still_receives_the_reply(lab):
    async def reply_after_eof(reader, writer):
        request = await reader.read()  # until the client's FIN
        writer.write(b"got " + request)
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(reply_after_eof, "127.0.0.1", 0)
    port = await lab.proxy(name="h", upstream=f"127.0.0.1:{port_of(upstream)}")
    reader, writer = await connect(port)
    writer.write(b"ping")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 3) == b"got ping"
    upstream.close()


async def test_toxic_added_and_removed_on_an_open_connection(lab):
    reader, writer = await connect(await lab.proxy())
    assert await round_trip(reader, writer) < 0.05
    await lab.toxic("t", {"name": "slow", "type": "latency", "attributes": {"latency": 200}})
    assert 0.2 <= await round_trip(reader, writer) <= 0.2 + SLACK_S
    status, _, _ = await http(lab.api, "PATCH", "/proxies/t/toxics/slow", {"attributes": {"latency": 50}})
    assert status == 200
    assert 0.05 <= await round_trip(reader, writer) <= 0.05 + SLACK_S
    assert (await http(lab.api, "DELETE", "/proxies/t/toxics/slow"))[0] == 204
    assert await round_trip(reader, writer) < 0.05
    writer.close()


async def test_removing_a_toxic_mid_delay_delivers_held_data(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"name": "slow", "type": "latency", "attributes": {"latency": 5000}}]))
    writer.write(b"held")
    await asyncio.sleep(0.2)
    assert (await http(lab.api, "DELETE", "/proxies/t/toxics/slow"))[0] == 204
    assert await asyncio.wait_for(reader.readexactly(4), 1) == b"held"
    writer.close()


@pytest.mark.parametrize("action", ["disable", "delete"])
async def test_disabling_or_deleting_a_proxy_closes_its_connections(lab, action):
    port = await lab.proxy()
    reader, writer = await connect(port)
    await round_trip(reader, writer)
    if action == "disable":
        status, _, _ = await http(lab.api, "PATCH", "/proxies/t", {"enabled": False})
        assert status == 200
    else:
        assert (await http(lab.api, "DELETE", "/proxies/t"))[0] == 204
    state, _, elapsed = await outcome(reader, 2.0)
    assert state in ("eof", "reset") and elapsed < 0.5
    with pytest.raises(ConnectionRefusedError):
        await connect(port)


async def test_unreachable_upstream_closes_the_client(lab):
    reader, _writer = await connect(await lab.proxy(upstream=f"127.0.0.1:{free_port()}"))
    state, data, elapsed = await outcome(reader, 2.0)
    assert state in ("eof", "reset") and data == b"" and elapsed < 0.5


async def test_a_reset_client_does_not_disturb_other_connections(lab):
    port = await lab.proxy()
    reader_a, writer_a = await connect(port)
    reader_b, writer_b = await connect(port)
    sock = writer_a.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer_a.transport.abort()
    await asyncio.sleep(0.05)
    assert await round_trip(reader_b, writer_b) < 0.05
    writer_b.close()


async def test_slow_upstream_reader_applies_backpressure_not_buffering(lab):
    """An upstream that never reads: the proxy must stop reading the client, not buffer it all."""
    stalled: list[asyncio.StreamWriter] = []

    async def never_reads(reader, writer):
        stalled.append(writer)
        await asyncio.sleep(30)

    upstream = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = await lab.proxy(name="bp", upstream=f"127.0.0.1:{port_of(upstream)}")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    accepted = 0
    chunk = b"b" * 65536
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            accepted += sock.send(chunk)
        except BlockingIOError:
            await asyncio.sleep(0.05)
            try:
                accepted += sock.send(chunk)
            except BlockingIOError:
                break
    # kernel buffers on both hops plus the proxy's 256 KiB high-water mark: far below 64 MiB
    assert accepted < 64 * 1024 * 1024
    held = sum(link.directions["upstream"].budget.held for link in lab.server.collection.get("bp").links.values())
    assert held <= 512 * 1024
    sock.close()
    upstream.close()


async def test_seed_makes_toxicity_decisions_repeatable():
    # the toxic's effect is an outcome, not a timing: a connection the roll picks is
    # closed after one byte, the others echo (a latency threshold flaked under load)
    async def pattern(seed: int) -> list[bool]:
        echo = await start_echo()
        async with ProxyServer("127.0.0.1", 0, Context(seed=seed)) as server:
            lab = Lab(server, port_of(echo))
            port = await lab.proxy(toxics=[{"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 1}}])
            conns = [await connect(port) for _ in range(16)]
            picked = []
            for reader, writer in conns:
                try:
                    await round_trip(reader, writer)
                    picked.append(False)
                except (asyncio.IncompleteReadError, ConnectionError):
                    picked.append(True)
            for _, writer in conns:
                writer.close()
        echo.close()
        return picked

    first, again, other = await pattern(42), await pattern(42), await pattern(43)
    assert first == again
    assert 0 < sum(first) < 16
    assert first != other
