"""bandwidth: bytes pass at rate KB/s; rate 0 stalls without closing."""

from __future__ import annotations

from ..toxiclab import SLACK_S, connect, outcome, round_trip


async def test_bandwidth_limits_rate_in_kilobytes_per_second(lab):
    port = await lab.proxy(toxics=[{"type": "bandwidth", "attributes": {"rate": 100}}])
    reader, writer = await connect(port)
    elapsed = await round_trip(reader, writer, b"x" * 102400, timeout=10)
    assert 1.024 - 0.05 <= elapsed <= 1.024 + SLACK_S  # 102400 B at 100,000 B/s
    writer.close()


async def test_bandwidth_zero_stalls_without_closing(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "bandwidth", "attributes": {"rate": 0}}]))
    writer.write(b"hello")
    state, data, _ = await outcome(reader, 1.0)
    assert (state, data) == ("open", b"")
    writer.close()
