"""limit_data: exactly `bytes` pass, then the link closes with a FIN."""

from __future__ import annotations

import asyncio

from ..toxiclab import connect, outcome


async def test_limit_data_passes_exactly_the_limit_then_fin(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "limit_data", "attributes": {"bytes": 1024}}]))
    writer.write(b"y" * 4096)
    state, data, _ = await outcome(reader, 3.0)
    assert (state, len(data)) == ("eof", 1024)


async def test_limit_data_counts_across_writes(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "limit_data", "attributes": {"bytes": 1024}}]))
    received = b""
    for _ in range(3):
        writer.write(b"z" * 600)
        try:
            received += await asyncio.wait_for(reader.read(65536), 1)
        except ConnectionError:
            break
    state, rest, _ = await outcome(reader, 2.0)
    assert state == "eof" and len(received + rest) == 1024


async def test_limit_data_upstream_cuts_the_request(lab):
    port = await lab.proxy(toxics=[{"type": "limit_data", "stream": "upstream", "attributes": {"bytes": 10}}])
    reader, writer = await connect(port)
    writer.write(b"q" * 100)
    state, data, _ = await outcome(reader, 3.0)
    assert state == "eof" and len(data) <= 10
