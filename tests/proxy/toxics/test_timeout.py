"""timeout: data is swallowed and the link closed after timeout ms; 0 holds it forever."""

from __future__ import annotations

import asyncio

from ..helpers import http
from ..toxiclab import SLACK_S, connect, outcome


async def test_timeout_swallows_data_then_closes(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "timeout", "attributes": {"timeout": 1000}}]))
    writer.write(b"hello")
    state, data, elapsed = await outcome(reader, 3.0)
    assert (state, data) == ("eof", b"")
    assert 1.0 <= elapsed <= 1.0 + SLACK_S


async def test_timeout_closes_an_idle_connection_too(lab):
    reader, _writer = await connect(await lab.proxy(toxics=[{"type": "timeout", "attributes": {"timeout": 500}}]))
    state, _, elapsed = await outcome(reader, 3.0)
    assert state == "eof" and 0.5 <= elapsed <= 0.5 + SLACK_S


async def test_timeout_zero_is_a_blackhole(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "timeout", "attributes": {"timeout": 0}}]))
    writer.write(b"hello")
    assert (await outcome(reader, 1.5))[:2] == ("open", b"")
    writer.close()


async def test_removing_a_timeout_closes_the_connections_it_held(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "timeout", "attributes": {"timeout": 0}}]))
    writer.write(b"hello")
    await asyncio.sleep(0.1)
    status, _, _ = await http(lab.api, "DELETE", "/proxies/t/toxics/timeout_downstream")
    assert status == 204
    state, data, elapsed = await outcome(reader, 2.0)
    assert state == "eof" and data == b"" and elapsed < 0.5
