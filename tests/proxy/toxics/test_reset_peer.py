"""reset_peer: after timeout ms from the first data, both sockets get an RST."""

from __future__ import annotations

import pytest

from ..toxiclab import SLACK_S, connect, outcome


@pytest.mark.parametrize("timeout_ms", [0, 500])
async def test_reset_peer_sends_rst_after_timeout(lab, timeout_ms):
    port = await lab.proxy(toxics=[{"type": "reset_peer", "attributes": {"timeout": timeout_ms}}])
    reader, writer = await connect(port)
    writer.write(b"hello")
    state, _, elapsed = await outcome(reader, 3.0)
    assert state == "reset"
    assert timeout_ms / 1000 <= elapsed + 0.01 <= timeout_ms / 1000 + SLACK_S


async def test_reset_peer_waits_for_data(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "reset_peer", "attributes": {"timeout": 0}}]))
    assert (await outcome(reader, 1.0))[0] == "open"
    writer.close()


async def test_reset_peer_upstream_resets_the_client_too(lab):
    port = await lab.proxy(toxics=[{"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 200}}])
    reader, writer = await connect(port)
    writer.write(b"hello")
    state, data, elapsed = await outcome(reader, 3.0)
    assert state == "reset" and data == b"" and 0.2 <= elapsed + 0.01 <= 0.2 + SLACK_S
