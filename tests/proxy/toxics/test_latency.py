"""latency: each chunk is held for latency ± jitter ms, on either direction."""

from __future__ import annotations

import pytest

from ..toxiclab import SLACK_S, connect, round_trip


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
async def test_latency_delays_each_round_trip(lab, stream):
    port = await lab.proxy(toxics=[{"type": "latency", "stream": stream, "attributes": {"latency": 100}}])
    reader, writer = await connect(port)
    for _ in range(3):
        assert 0.100 <= await round_trip(reader, writer) <= 0.100 + SLACK_S
    writer.close()


async def test_latency_jitter_stays_within_its_band(lab):
    port = await lab.proxy(toxics=[{"type": "latency", "attributes": {"latency": 100, "jitter": 50}}])
    reader, writer = await connect(port)
    seen = [await round_trip(reader, writer) for _ in range(8)]
    assert all(0.050 <= rtt <= 0.150 + SLACK_S for rtt in seen)
    assert max(seen) - min(seen) > 0.005  # jitter really varies the delay
    writer.close()


async def test_toxicity_zero_never_applies(lab):
    port = await lab.proxy(toxics=[{"type": "latency", "toxicity": 0, "attributes": {"latency": 500}}])
    reader, writer = await connect(port)
    assert await round_trip(reader, writer) < 0.1
    writer.close()
