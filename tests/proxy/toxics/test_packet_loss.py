"""packet_loss (our extension): whole chunks dropped at ``rate``, in bursts with ``correlation``.

Statistical assertions use bounds that a correct implementation misses with probability
below 1e-6 (stated per test); the server is seeded, so a run is reproducible anyway.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from lab.proxy.client import BadRequest

CHUNKS = 200


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


async def test_packet_loss_drops_about_rate_of_the_chunks(api_lab):
    client, echo_port = api_lab
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


async def test_packet_loss_correlation_makes_longer_bursts(api_lab):
    client, echo_port = api_lab
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


async def test_a_rate_above_one_is_a_400(api_lab):
    client, echo_port = api_lab
    await client.create_proxy("p", f"127.0.0.1:{echo_port}")
    with pytest.raises(BadRequest, match="rate"):
        await client.add_toxic("p", "packet_loss", attributes={"rate": 1.5})
    assert await client.toxics("p") == []
