import pytest

from lab.proxy import Context, ProxyServer
from lab.proxy.client import ToxiproxyClient

from ..helpers import port_of, start_echo

from ..toxiclab import running_lab


@pytest.fixture
async def lab():
    async with running_lab() as lab:
        yield lab


@pytest.fixture
async def api_lab():
    """(a ToxiproxyClient of a server seeded 11, the port of an echo upstream): the seed keeps the
    statistical tests of the extension toxics reproducible."""
    echo = await start_echo()
    server = ProxyServer("127.0.0.1", 0, Context(seed=11))
    await server.start()
    client = ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}")
    try:
        yield client, port_of(echo)
    finally:
        await server.close()
        echo.close()
