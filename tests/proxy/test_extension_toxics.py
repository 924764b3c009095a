"""Our extension toxics on real loopback sockets, without a database: packet_loss and corrupt
(byte level), and the postgres toxic's stepping aside for an encrypted session.

Statistical assertions use bounds that a correct implementation misses with probability
below 1e-6 (stated per test); the server is seeded, so a run is reproducible anyway.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct

import pytest

from lab.proxy import Context, ProxyServer
from lab.proxy.client import BadRequest, ToxiproxyClient
from lab.proxy.toxics.corrupt import flip_positions

from .helpers import port_of, start_echo

pytestmark = pytest.mark.integration

CHUNKS = 200


@pytest.fixture
async def lab():
    echo = await start_echo()
    server = ProxyServer("127.0.0.1", 0, Context(seed=11))
    await server.start()
    client = ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}")
    try:
        yield client, port_of(echo)
    finally:
        await server.close()
        echo.close()


async def chunks_through(port: int, count: int, size: int = 64) -> list[bytes]:
    """Send ``count`` numbered chunks upstream one at a time (each echoed before the next goes,
    so each is its own chunk in the proxy); return what came back, split per chunk sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got: list[bytes] = []
    try:
        for number in range(count):
            payload = struct.pack("!I", number) * (size // 4)
            writer.write(payload)
            try:
                got.append(await asyncio.wait_for(reader.readexactly(size), 0.02))
            except asyncio.TimeoutError:
                got.append(b"")  # dropped
    finally:
        writer.close()
    return got


async def test_packet_loss_drops_about_rate_of_the_chunks(lab):
    client, echo_port = lab
    proxy = await client.create_proxy("lossy", f"127.0.0.1:{echo_port}")
    await client.add_toxic("lossy", "packet_loss", stream="upstream", attributes={"rate": 0.3})
    got = await chunks_through(proxy.listen_port, CHUNKS)
    lost = sum(1 for g in got if not g)
    assert 30 <= lost <= 90  # binomial(200, 0.3): mean 60, sd 6.5; outside is > 4.6 sd
    kept = [g for g in got if g]
    assert len(set(kept)) == len(kept)  # nothing is duplicated or cut: whole chunks go or stay


def bursts(lost_flags: list[bool]) -> list[int]:
    runs, current = [], 0
    for flag in lost_flags:
        if flag:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs + ([current] if current else [])


async def test_packet_loss_correlation_makes_longer_bursts(lab):
    client, echo_port = lab
    proxy = await client.create_proxy("bursty", f"127.0.0.1:{echo_port}")
    await client.add_toxic("bursty", "packet_loss", name="loss", stream="upstream",
                           attributes={"rate": 0.3, "correlation": 0.8})
    got = await chunks_through(proxy.listen_port, CHUNKS)
    runs = bursts([not g for g in got])
    mean_burst = sum(runs) / len(runs)
    # Independent losses: mean burst 1/(1-0.3) = 1.43; correlated: 1/((1-0.8)(1-0.3)) = 7.1.
    assert mean_burst >= 3.0
    await client.update_toxic("bursty", "loss", attributes={"rate": 0.0, "correlation": 0.0})
    assert all(await chunks_through(proxy.listen_port, 20))


async def test_corrupt_flips_bits_at_about_the_probability(lab):
    client, echo_port = lab
    proxy = await client.create_proxy("noisy", f"127.0.0.1:{echo_port}")
    await client.add_toxic("noisy", "corrupt", stream="downstream", attributes={"probability": 0.001})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
    sent = bytes(random.Random(3).randrange(256) for _ in range(32768))
    writer.write(sent)
    got = await asyncio.wait_for(reader.readexactly(len(sent)), 5)
    writer.close()
    flipped = sum(bin(a ^ b).count("1") for a, b in zip(sent, got))
    assert len(got) == len(sent)
    assert 180 <= flipped <= 350  # binomial(262144, 0.001): mean 262, sd 16


def test_flip_positions_are_in_range_and_sorted():
    rng = random.Random(5)
    positions = flip_positions(8000, 0.01, rng)
    assert positions == sorted(set(positions))
    assert all(0 <= p < 8000 for p in positions)
    assert flip_positions(8000, 0.0, rng) == []


async def test_bad_attributes_of_byte_toxics_are_a_400(lab):
    client, echo_port = lab
    await client.create_proxy("p", f"127.0.0.1:{echo_port}")
    with pytest.raises(BadRequest, match="rate"):
        await client.add_toxic("p", "packet_loss", attributes={"rate": 1.5})
    with pytest.raises(BadRequest, match="probability"):
        await client.add_toxic("p", "corrupt", attributes={"probability": 0.5})
    assert await client.toxics("p") == []


async def _tls_accepting_server() -> asyncio.AbstractServer:
    """Answers an SSLRequest with 'S' (as a server with TLS on), then echoes raw bytes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(8)
        assert struct.unpack("!ii", request) == (8, 80877103)
        writer.write(b"S")
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_postgres_toxic_steps_aside_for_an_encrypted_session(lab, caplog):
    client, _ = lab
    upstream = await _tls_accepting_server()
    try:
        proxy = await client.create_proxy("pg", f"127.0.0.1:{port_of(upstream)}")
        await client.add_toxic("pg", "postgres", attributes={"pattern": "", "sqlstate": "40001"})
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
        with caplog.at_level(logging.WARNING, logger="lab.proxy"):
            writer.write(struct.pack("!ii", 8, 80877103))
            assert await asyncio.wait_for(reader.readexactly(1), 5) == b"S"
            # What follows is TLS: opaque bytes, passed both ways untouched, however they look.
            hello = b"\x16\x03\x01" + bytes(range(200)) + b"Q\x00\x00\x00\x0dselect 1\x00"
            writer.write(hello)
            assert await asyncio.wait_for(reader.readexactly(len(hello)), 5) == hello
        assert "stepping aside" in caplog.text
        writer.close()
    finally:
        upstream.close()
