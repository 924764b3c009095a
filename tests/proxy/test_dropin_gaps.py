"""Issue 15: the three drop-in differences from Toxiproxy 2.12, each seen from a client.

* no (or an empty) ``listen``: a random free port, 201 with the address it got, and
  a second create of the same name 409 (on all interfaces; on loopback, said so, where
  the server listens only on loopback);
* two latency toxics on one direction add up;
* ``/populate`` keeps a proxy whose ``listen`` is written differently but resolves to
  the same address, toxics and all.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from lab.proxy import Context, ProxyServer
from lab.proxy.client import AlreadyExists, ToxiproxyClient

from .helpers import ThreadedServer, free_port, http, port_of, start_echo

SLACK_S = 0.25  # upper-bound slack for a loaded machine


@pytest.fixture
async def servers():
    """(open server, loopback-only server, echo port)."""
    echo = await start_echo()
    open_server = ProxyServer("127.0.0.1", 0, Context(seed=1))
    loopback_server = ProxyServer("127.0.0.1", 0, Context(seed=1, allow_remote_listen=False))
    await open_server.start()
    await loopback_server.start()
    try:
        yield open_server, loopback_server, port_of(echo)
    finally:
        await open_server.close()
        await loopback_server.close()
        echo.close()


async def echo_rtt(port: int, host: str = "127.0.0.1", payload: bytes = b"ping") -> float:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        started = time.monotonic()
        writer.write(payload)
        assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
        return time.monotonic() - started
    finally:
        writer.close()


# -- 1. empty listen ----------------------------------------------------------------------------


@pytest.mark.parametrize("body_listen", [None, ""], ids=["missing", "empty"])
async def test_empty_listen_binds_a_random_port_on_all_interfaces(servers, body_listen):
    server, _, echo_port = servers
    body = {"name": "anon", "upstream": f"127.0.0.1:{echo_port}"}
    if body_listen is not None:
        body["listen"] = body_listen
    status, headers, raw = await http(server.address[1], "POST", "/proxies", body)
    assert status == 201, raw
    listen = json.loads(raw)["listen"]
    host, _, port = listen.rpartition(":")
    assert host in ("[::]", "0.0.0.0") and int(port) > 0, listen
    assert "x-lab-proxy-listen" not in headers
    assert await echo_rtt(int(port)) < 1.0  # it really carries traffic, reachable via loopback
    status, _, raw = await http(server.address[1], "POST", "/proxies", body)
    assert (status, json.loads(raw)) == (409, {"error": "proxy already exists", "status": 409})


async def test_empty_listen_on_a_loopback_only_server_binds_loopback_and_says_so(servers):
    _, server, echo_port = servers
    status, headers, raw = await http(server.address[1], "POST", "/proxies",
                                      {"name": "anon", "listen": "", "upstream": f"127.0.0.1:{echo_port}"})
    assert status == 201, raw
    host, _, port = json.loads(raw)["listen"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert "allow-remote-listen=false" in headers["x-lab-proxy-listen"]
    assert await echo_rtt(int(port)) < 1.0


async def test_empty_listen_through_the_async_client(servers):
    server, _, echo_port = servers
    async with ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}") as client:
        proxy = await client.create_proxy("anon", f"127.0.0.1:{echo_port}", listen="")
        assert proxy.listen.startswith("[::]:") and proxy.listen_port > 0
        with pytest.raises(AlreadyExists):
            await client.create_proxy("anon", f"127.0.0.1:{echo_port}", listen="")
        (populated,) = await client.populate([{"name": "pop", "upstream": f"127.0.0.1:{echo_port}"}])
        assert populated.listen_port > 0 and populated.listen_port != proxy.listen_port


def test_empty_listen_through_toxiproxy_python():
    from toxiproxy.api import APIConsumer
    from toxiproxy.server import Toxiproxy

    with ThreadedServer(Context(seed=1)) as server:
        APIConsumer.host, APIConsumer.port = "127.0.0.1", server.port
        toxiproxy = Toxiproxy()
        # toxiproxy-python sends "127.0.0.1:0" when listen is left out; "" is passed as given.
        proxy = toxiproxy.create(upstream=f"127.0.0.1:{server.echo_port}", name="anon", listen="")
        assert proxy.listen.startswith("[::]:")
        with socket.create_connection(("127.0.0.1", int(proxy.listen.rsplit(":", 1)[1])), timeout=5) as sock:
            sock.sendall(b"hi")
            assert sock.recv(2) == b"hi"
        toxiproxy.destroy_all()


# -- 2. latency toxics add up -------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
async def test_two_latency_toxics_on_one_direction_add_up(servers, stream):
    server, _, echo_port = servers
    async with ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}") as client:
        proxy = await client.create_proxy("slow", f"127.0.0.1:{echo_port}")
        for name in ("first", "second"):
            await client.add_toxic("slow", "latency", name=name, stream=stream, attributes={"latency": 100})
        for _ in range(3):
            assert 0.200 <= await echo_rtt(proxy.listen_port) <= 0.200 + SLACK_S
        await client.remove_toxic("slow", "second")
        assert 0.100 <= await echo_rtt(proxy.listen_port) <= 0.100 + SLACK_S


async def test_latency_on_both_directions_still_adds_up_to_the_sum(servers):
    server, _, echo_port = servers
    async with ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}") as client:
        proxy = await client.create_proxy("slow", f"127.0.0.1:{echo_port}")
        await client.add_toxic("slow", "latency", name="up", stream="upstream", attributes={"latency": 80})
        await client.add_toxic("slow", "latency", name="down1", attributes={"latency": 60})
        await client.add_toxic("slow", "latency", name="down2", attributes={"latency": 60})
        assert 0.200 <= await echo_rtt(proxy.listen_port) <= 0.200 + SLACK_S


# -- 3. populate compares resolved listen addresses ---------------------------------------------


async def test_populate_keeps_a_proxy_whose_listen_resolves_to_the_same_address(servers):
    server, _, echo_port = servers
    port = free_port()
    upstream = f"127.0.0.1:{echo_port}"
    async with ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}") as client:
        created = await client.create_proxy("db", upstream, listen=f"localhost:{port}")
        assert created.listen == f"127.0.0.1:{port}"
        await client.add_toxic("db", "latency", name="slow", attributes={"latency": 50})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # a live connection survives too
        (kept,) = await client.populate([{"name": "db", "listen": f"localhost:{port}", "upstream": upstream}])
        assert kept.listen == f"127.0.0.1:{port}"
        assert [t.name for t in await client.toxics("db")] == ["slow"]
        writer.write(b"still")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"still"
        writer.close()
        # Written differently again (the stored form): still the same proxy.
        await client.populate([{"name": "db", "listen": f"127.0.0.1:{port}", "upstream": upstream}])
        assert [t.name for t in await client.toxics("db")] == ["slow"]
        # A different address does replace it, and the toxics go, as in Toxiproxy.
        other = free_port()
        (replaced,) = await client.populate([{"name": "db", "listen": f"localhost:{other}", "upstream": upstream}])
        assert replaced.listen == f"127.0.0.1:{other}"
        assert await client.toxics("db") == []


async def test_populate_compares_a_disabled_proxys_listen_resolved_too(servers):
    server, _, echo_port = servers
    port = free_port()
    upstream = f"127.0.0.1:{echo_port}"
    async with ToxiproxyClient(f"http://127.0.0.1:{server.address[1]}") as client:
        await client.create_proxy("off", upstream, listen=f"127.0.0.1:{port}", enabled=False)
        await client.add_toxic("off", "latency", name="slow", attributes={"latency": 50})
        await client.populate([{"name": "off", "listen": f"localhost:{port}", "upstream": upstream,
                                "enabled": False}])
        assert [t.name for t in await client.toxics("off")] == ["slow"]
