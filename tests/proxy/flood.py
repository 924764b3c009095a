"""Load for the fairness test, in its own process so it never shares a GIL with the measurement.

    python tests/proxy/flood.py echo                      # an echo server; prints its port, runs until killed
    python tests/proxy/flood.py flood PORT CONNS SECONDS  # CONNS clients pushing 64 KiB blocks through PORT

A flooding client writes a 64 KiB block every 20 ms (as fast as the proxy takes
them, when slower) and reads back whatever comes; when its connection ends (a toxic closed or reset it) it opens
a new one. Everything stops after SECONDS.
"""

from __future__ import annotations

import asyncio
import sys

BLOCK = b"f" * 65536
#: Between blocks: about 3 MB/s per client. Far more than a 1-byte slicer can cut, while
#: a pass-through proxy carries it at a few percent of a core, so the machine is not
#: saturated by the load itself and what is measured is the proxy's fairness.
PAUSE_S = 0.02


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def echo() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def _drain_reads(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def _client(port: int, stop_at: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.01)
            continue
        draining = asyncio.create_task(_drain_reads(reader))
        try:
            while loop.time() < stop_at and not draining.done():
                writer.write(BLOCK)
                await asyncio.wait_for(writer.drain(), max(0.01, stop_at - loop.time()))
                await asyncio.sleep(PAUSE_S)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            draining.cancel()
            writer.close()
        await asyncio.sleep(0.001)


async def flood(port: int, connections: int, seconds: float) -> None:
    stop_at = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(*(_client(port, stop_at) for _ in range(connections)), return_exceptions=True)


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        asyncio.run(echo())
    else:
        asyncio.run(flood(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
