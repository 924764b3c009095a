"""corrupt (our extension): bits flipped with ``probability`` each, nothing added or lost.

Statistical assertions use bounds that a correct implementation misses with probability
below 1e-6 (stated per test); the server is seeded, so a run is reproducible anyway.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from lab.proxy.client import BadRequest
from lab.proxy.toxics.corrupt import flip_positions


async def test_corrupt_flips_bits_at_about_the_probability(api_lab):
    client, echo_port = api_lab
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


async def test_a_probability_too_high_is_a_400(api_lab):
    client, echo_port = api_lab
    await client.create_proxy("p", f"127.0.0.1:{echo_port}")
    with pytest.raises(BadRequest, match="probability"):
        await client.add_toxic("p", "corrupt", attributes={"probability": 0.5})
    assert await client.toxics("p") == []
