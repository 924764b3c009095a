"""latency: each chunk is held for latency ± jitter ms, on either direction."""

from __future__ import annotations

import random
import time

import pytest

from lab.proxy.stream import Chunk
from lab.proxy.toxics.latency import Latency

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


class _TakenUpLate:
    """The toxic's side of a stage, as pure logic: one chunk that waited 5 ms before the toxic read it."""

    def __init__(self, ts: float) -> None:
        self.chunks: list = [Chunk(b"x", ts), None]
        self.written: list = []
        self.rng = random.Random(0)

    async def read(self):
        return self.chunks.pop(0)

    async def sleep_until(self, when: float) -> None:
        return None

    def write(self, chunk) -> None:
        self.written.append(chunk)

    def close(self) -> None:
        pass


@pytest.mark.unit
async def test_a_chunk_leaves_stamped_with_the_time_it_was_due():
    """So a second latency toxic adds its full delay: the stamp is not short by the 5 ms the chunk
    waited before the first toxic took it up (Toxiproxy adds what it slept; a loaded machine saw
    196.8 ms through 100 + 100 ms)."""
    arrived = time.monotonic() - 0.005
    stub = _TakenUpLate(arrived)
    await Latency(latency=100).pipe(stub)  # type: ignore[arg-type]
    (out,) = stub.written
    assert out.ts == pytest.approx(arrived + 0.100, abs=1e-9)
