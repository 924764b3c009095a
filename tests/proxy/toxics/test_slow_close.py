"""slow_close: the FIN is held for delay ms."""

from __future__ import annotations

from ..toxiclab import SLACK_S, connect, outcome, round_trip


async def test_slow_close_delays_the_fin(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "slow_close", "attributes": {"delay": 500}}]))
    await round_trip(reader, writer, b"hi")
    writer.write_eof()
    state, _, elapsed = await outcome(reader, 3.0)
    assert state == "eof" and 0.5 <= elapsed <= 0.5 + SLACK_S
