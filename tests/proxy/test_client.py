"""lab.proxy.client against our server: typed objects, mapped errors, bounded requests."""

from __future__ import annotations

import asyncio

import pytest

from lab.proxy import ProxyServer
from lab.proxy.client import (
    AlreadyExists,
    BadRequest,
    ClientTimeout,
    NotFound,
    ServerError,
    ToxiproxyClient,
    Unreachable,
)

from .helpers import free_port, port_of, start_echo


@pytest.fixture
async def client():
    async with ProxyServer("127.0.0.1", 0) as server:
        yield ToxiproxyClient(server.url, timeout_s=3)


async def test_full_lifecycle(client):
    echo = await start_echo()
    assert await client.version() == "2.12.0"
    proxy = await client.create_proxy("e", upstream=f"127.0.0.1:{port_of(echo)}")
    assert proxy.enabled and proxy.listen.startswith("127.0.0.1:") and proxy.listen_port > 0
    toxic = await client.add_toxic("e", "latency", attributes={"latency": 10, "jitter": 2})
    assert (toxic.name, toxic.stream, toxic.toxicity) == ("latency_downstream", "downstream", 1.0)
    toxic = await client.update_toxic("e", toxic.name, toxicity=0.5)
    assert toxic.toxicity == 0.5 and toxic.attributes == {"latency": 10, "jitter": 2}
    assert [t.name for t in await client.toxics("e")] == ["latency_downstream"]
    assert (await client.disable("e")).enabled is False
    assert (await client.enable("e")).enabled is True
    assert set(await client.proxies()) == {"e"}
    await client.reset()
    assert (await client.get_proxy("e")).toxics == ()
    populated = await client.populate([{"name": "p2", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}])
    assert [p.name for p in populated] == ["p2"]
    await client.delete_proxy("e")
    await client.delete_proxy("p2")
    assert await client.proxies() == {}
    echo.close()


async def test_errors_map_to_their_status(client):
    with pytest.raises(NotFound, match="proxy not found"):
        await client.get_proxy("missing")
    await client.create_proxy("x", upstream="127.0.0.1:1")
    with pytest.raises(AlreadyExists):
        await client.create_proxy("x", upstream="127.0.0.1:1")
    with pytest.raises(BadRequest, match="invalid toxic type"):
        await client.add_toxic("x", "nonsense")
    taken = (await client.get_proxy("x")).listen
    with pytest.raises(ServerError, match="address already in use"):
        await client.create_proxy("y", upstream="127.0.0.1:1", listen=taken)
    with pytest.raises(NotFound, match="toxic not found"):
        await client.remove_toxic("x", "nope")


async def test_names_with_reserved_characters_are_escaped(client):
    await client.create_proxy("a b", upstream="127.0.0.1:1")
    assert (await client.get_proxy("a b")).name == "a b"


async def test_unreachable_server_is_reported_fast():
    client = ToxiproxyClient(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(Unreachable):
        await client.version()


async def test_a_server_that_never_answers_times_out():
    async def silent(reader, writer):
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    client = ToxiproxyClient(f"http://127.0.0.1:{port_of(server)}", timeout_s=0.3)
    with pytest.raises(ClientTimeout, match="within 0.3s"):
        await client.version()
    server.close()


def test_bad_url_is_rejected():
    with pytest.raises(ValueError, match="http://host:port"):
        ToxiproxyClient("ftp://x")


async def test_config_file_count_is_what_populate_created(tmp_path):
    config = tmp_path / "proxies.json"
    config.write_text('[{"name":"a","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"},'
                      '{"name":"b","listen":"127.0.0.1:0","upstream":"127.0.0.1:1","note":"\\"name\\""}]')
    async with ProxyServer("127.0.0.1", 0) as server:
        assert await server.populate_file(str(config)) == 2
        assert set(server.collection.proxies) == {"a", "b"}
