"""Health probes, each bounded in time: what 'up' means for every component.

* proxy: GET /version answers, and the postgres and kafka proxies exist and are enabled;
* postgres: a real query (SELECT 1) answers through the proxied port;
* kafka: a Metadata request through the proxied port lists only the proxied
  address (a broker advertising anything else would let clients bypass the proxy).
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Awaitable, Callable

from ..config import HOST, PG_DATABASE, PG_USER, Settings
from ..errors import Refused as Refused  # re-exported with Unhealthy
from ..errors import Unhealthy as Unhealthy  # re-exported: health.Unhealthy is where callers catch it


async def proxy_ready(api_port: int, expect: tuple[str, ...] = (), timeout_s: float = 2.0) -> str:
    from ..proxy.client import ToxiproxyClient, ToxiproxyError

    client = ToxiproxyClient(f"http://{HOST}:{api_port}", timeout_s=timeout_s)
    try:
        version = await client.version()
        proxies = await client.proxies()
    except ToxiproxyError as err:
        raise Unhealthy(str(err)) from None
    for name in expect:
        if name not in proxies:
            raise Unhealthy(f"proxy {name!r} is missing")
        if not proxies[name].enabled:
            raise Unhealthy(f"proxy {name!r} is disabled")
    return f"toxiproxy API {version}"


async def postgres_ready(port: int, database: str = PG_DATABASE, timeout_s: float = 2.0, *,
                         password: str) -> str:
    """SELECT 1 as user lab with ``password`` (``Settings.pg_password``): Postgres trusts no one."""
    import asyncpg

    try:
        async with asyncio.timeout(timeout_s):  # unlike 3.11's wait_for, never swallows a cancellation
            conn = await asyncpg.connect(host=HOST, port=port, user=PG_USER, password=password, database=database,
                                         timeout=timeout_s)
    except asyncpg.InvalidPasswordError:
        raise Refused(f"postgres on {HOST}:{port} refused the password for user {PG_USER}: its data was "
                      f"initialised with another one (LAB_PG_PASSWORD, or the state directory's pg_password, "
                      f"changed since); `python -m lab down --purge` starts its data afresh") from None
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        raise Unhealthy(f"cannot connect to postgres on {HOST}:{port}: {err or type(err).__name__}") from None
    try:
        async with asyncio.timeout(timeout_s):
            value = await conn.fetchval("SELECT 1")
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as err:
        raise Unhealthy(f"SELECT 1 failed on {HOST}:{port}: {err or type(err).__name__}") from None
    finally:
        conn.terminate()
    if value != 1:
        raise Unhealthy(f"SELECT 1 returned {value!r}")
    return "SELECT 1 ok"


def _metadata_request(correlation_id: int) -> bytes:
    client_id = b"chaoslab"
    # Metadata v1 (api_key 3): header (key, version, correlation id, client id), then topics = null (all)
    body = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id + struct.pack(">i", -1)
    return struct.pack(">i", len(body)) + body


def parse_brokers(payload: bytes) -> list[tuple[int, str, int]]:
    """Brokers from a Metadata v1 response body (after the length prefix)."""
    offset = 4  # correlation id
    (count,) = struct.unpack_from(">i", payload, offset)
    offset += 4
    brokers = []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", payload, offset)
        offset += 6
        host = payload[offset:offset + host_len].decode()
        offset += host_len
        (port,) = struct.unpack_from(">i", payload, offset)
        offset += 4
        (rack_len,) = struct.unpack_from(">h", payload, offset)
        offset += 2 + max(rack_len, 0)
        brokers.append((node_id, host, port))
    return brokers


async def kafka_brokers(port: int, timeout_s: float = 2.0) -> list[tuple[int, str, int]]:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(_metadata_request(1))
            (length,) = struct.unpack(">i", await reader.readexactly(4))
            return await reader.readexactly(length)
        finally:
            writer.close()

    try:
        async with asyncio.timeout(timeout_s):  # unlike 3.11's wait_for, never swallows a cancellation
            return parse_brokers(await exchange())
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, struct.error) as err:
        raise Unhealthy(f"no Kafka metadata from {HOST}:{port}: {err or type(err).__name__}") from None


async def kafka_ready(proxied_port: int, timeout_s: float = 2.0) -> str:
    brokers = await kafka_brokers(proxied_port, timeout_s)
    advertised = sorted({f"{host}:{port}" for _, host, port in brokers})
    if advertised != [f"{HOST}:{proxied_port}"]:
        raise Unhealthy(f"the broker advertises {advertised}, not only the proxied {HOST}:{proxied_port}: "
                        f"clients would bypass the proxy")
    return f"metadata lists only {HOST}:{proxied_port}"


async def wait_healthy(probe: Callable[[], Awaitable[str]], timeout_s: float, interval_s: float = 0.05) -> str:
    """Retry ``probe`` until it passes or ``timeout_s`` runs out (then the last Unhealthy); a Refused at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await probe()
        except Refused:
            raise
        except Unhealthy:
            if time.monotonic() + interval_s >= deadline:
                raise
        await asyncio.sleep(interval_s)


def proxy_config(settings: Settings) -> str:
    """The populate file the local proxy starts with: one proxy per service of the service table."""
    return json.dumps([{"name": name, "listen": listen, "upstream": upstream}
                       for name, (listen, upstream) in settings.proxied().items()], indent=2)
