"""slicer: chunks are cut into small pieces, in order."""

from __future__ import annotations

import asyncio

from ..toxiclab import connect


async def test_slicer_splits_into_many_reads_and_keeps_bytes_in_order(lab):
    port = await lab.proxy(toxics=[{"type": "slicer", "attributes": {"average_size": 64, "size_variation": 32, "delay": 2000}}])
    reader, writer = await connect(port)
    payload = bytes(range(256)) * 4
    writer.write(payload)
    got, reads = b"", 0
    while len(got) < len(payload):
        got += await asyncio.wait_for(reader.read(65536), 3)
        reads += 1
    assert got == payload and reads >= 5
    writer.close()
