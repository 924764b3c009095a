"""postgres (our extension), without a database: the toxic steps aside for an encrypted session.

Its behaviour against a real server, through asyncpg, is in tests/integration/test_postgres_toxic.py.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from ..helpers import port_of


async def _tls_accepting_server() -> asyncio.AbstractServer:
    """Answers an SSLRequest with 'S' (as a server with TLS on), then echoes raw bytes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(8)
        assert struct.unpack("!ii", request) == (8, 80877103)
        writer.write(b"S")
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_postgres_toxic_steps_aside_for_an_encrypted_session(api_lab, caplog):
    client, _ = api_lab
    upstream = await _tls_accepting_server()
    try:
        proxy = await client.create_proxy("pg", f"127.0.0.1:{port_of(upstream)}")
        await client.add_toxic("pg", "postgres", attributes={"pattern": "", "sqlstate": "40001"})
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
        with caplog.at_level(logging.WARNING, logger="lab.proxy"):
            writer.write(struct.pack("!ii", 8, 80877103))
            assert await asyncio.wait_for(reader.readexactly(1), 5) == b"S"
            # What follows is TLS: opaque bytes, passed both ways untouched, however they look.
            hello = b"\x16\x03\x01" + bytes(range(200)) + b"Q\x00\x00\x00\x0dselect 1\x00"
            writer.write(hello)
            assert await asyncio.wait_for(reader.readexactly(len(hello)), 5) == hello
        assert "stepping aside" in caplog.text
        writer.close()
    finally:
        upstream.close()
