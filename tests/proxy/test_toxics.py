"""Each toxic on real loopback sockets, as the transcript's data-plane table observed it.

Timings carry explicit tolerances: asyncio timers are good to about a millisecond,
and CI machines are shared, so lower bounds are tight and upper bounds generous.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from lab.proxy import Context, ProxyServer

from .helpers import free_port, http, port_of, start_echo

SLACK_S = 0.25  # upper-bound slack for a loaded CI machine


class Lab:
    """A ProxyServer and an echo upstream in the test's event loop."""

    def __init__(self, server: ProxyServer, echo_port: int) -> None:
        self.server = server
        self.echo_port = echo_port
        self.api = server.address[1]

    async def proxy(self, name: str = "t", upstream: str | None = None, toxics: list[dict] | None = None) -> int:
        status, _, body = await http(self.api, "POST", "/proxies", {
            "name": name, "listen": "127.0.0.1:0", "upstream": upstream or f"127.0.0.1:{self.echo_port}"})
        assert status == 201, body
        for toxic in toxics or []:
            await self.toxic(name, toxic)
        return int(json.loads(body)["listen"].rsplit(":", 1)[1])

    async def toxic(self, proxy: str, toxic: dict) -> dict:
        status, _, body = await http(self.api, "POST", f"/proxies/{proxy}/toxics", toxic)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
async def lab():
    echo = await start_echo()
    server = ProxyServer("127.0.0.1", 0, Context(seed=7))
    await server.start()
    try:
        yield Lab(server, port_of(echo))
    finally:
        await server.close()
        echo.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def round_trip(reader, writer, payload: bytes = b"hello", timeout: float = 5.0) -> float:
    started = time.monotonic()
    writer.write(payload)
    got = await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    assert got == payload
    return time.monotonic() - started


async def outcome(reader, limit_s: float) -> tuple[str, bytes, float]:
    """Read until EOF, RST or ``limit_s``: ('eof'|'reset'|'open', data, seconds)."""
    started = time.monotonic()
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.0, limit_s - (time.monotonic() - started)))
            if not chunk:
                return "eof", data, time.monotonic() - started
            data += chunk
    except asyncio.TimeoutError:
        return "open", data, time.monotonic() - started
    except ConnectionResetError:
        return "reset", data, time.monotonic() - started


async def test_no_toxic_echoes_at_once(lab):
    reader, writer = await connect(await lab.proxy())
    assert await round_trip(reader, writer) < 0.05
    writer.close()


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
async def test_latency_delays_each_round_trip(lab, stream):
    port = await lab.proxy(toxics=[{"type": "latency", "stream": stream, "attributes": {"latency": 100}}])
    reader, writer = await connect(port)
    for _ in range(3):
        assert 0.100 <= await round_trip(reader, writer) <= 0.100 + SLACK_S
    writer.close()


async def test_latency_jitter_stays_within_its_band(lab):
    port = await lab.proxy(toxics=[{"type": "latency", "attributes": {"latency": 100, "jitter": 50}}])
    reader, writer = await connect(port)
    seen = [await round_trip(reader, writer) for _ in range(8)]
    assert all(0.050 <= rtt <= 0.150 + SLACK_S for rtt in seen)
    assert max(seen) - min(seen) > 0.005  # jitter really varies the delay
    writer.close()


async def test_toxicity_zero_never_applies(lab):
    port = await lab.proxy(toxics=[{"type": "latency", "toxicity": 0, "attributes": {"latency": 500}}])
    reader, writer = await connect(port)
    assert await round_trip(reader, writer) < 0.1
    writer.close()


async def test_bandwidth_limits_rate_in_kilobytes_per_second(lab):
    port = await lab.proxy(toxics=[{"type": "bandwidth", "attributes": {"rate": 100}}])
    reader, writer = await connect(port)
    elapsed = await round_trip(reader, writer, b"x" * 102400, timeout=10)
    assert 1.024 - 0.05 <= elapsed <= 1.024 + SLACK_S  # 102400 B at 100,000 B/s
    writer.close()


async def test_bandwidth_zero_stalls_without_closing(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "bandwidth", "attributes": {"rate": 0}}]))
    writer.write(b"hello")
    state, data, _ = await outcome(reader, 1.0)
    assert (state, data) == ("open", b"")
    writer.close()


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


async def test_slow_close_delays_the_fin(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"type": "slow_close", "attributes": {"delay": 500}}]))
    await round_trip(reader, writer, b"hi")
    writer.write_eof()
    state, _, elapsed = await outcome(reader, 3.0)
    assert state == "eof" and 0.5 <= elapsed <= 0.5 + SLACK_S


async def test_half_close_without_toxics_is_passed_on_at_once(lab):
    reader, writer = await connect(await lab.proxy())
    await round_trip(reader, writer, b"hi")
    writer.write_eof()
    state, _, elapsed = await outcome(reader, 3.0)
    assert state == "eof" and elapsed < 0.2


async def test_half_closed_client_still_receives_the_reply(lab):
    async def reply_after_eof(reader, writer):
        request = await reader.read()  # until the client's FIN
        writer.write(b"got " + request)
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(reply_after_eof, "127.0.0.1", 0)
    port = await lab.proxy(name="h", upstream=f"127.0.0.1:{port_of(upstream)}")
    reader, writer = await connect(port)
    writer.write(b"ping")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 3) == b"got ping"
    upstream.close()


async def test_toxic_added_and_removed_on_an_open_connection(lab):
    reader, writer = await connect(await lab.proxy())
    assert await round_trip(reader, writer) < 0.05
    await lab.toxic("t", {"name": "slow", "type": "latency", "attributes": {"latency": 200}})
    assert 0.2 <= await round_trip(reader, writer) <= 0.2 + SLACK_S
    status, _, _ = await http(lab.api, "PATCH", "/proxies/t/toxics/slow", {"attributes": {"latency": 50}})
    assert status == 200
    assert 0.05 <= await round_trip(reader, writer) <= 0.05 + SLACK_S
    assert (await http(lab.api, "DELETE", "/proxies/t/toxics/slow"))[0] == 204
    assert await round_trip(reader, writer) < 0.05
    writer.close()


async def test_removing_a_toxic_mid_delay_delivers_held_data(lab):
    reader, writer = await connect(await lab.proxy(toxics=[{"name": "slow", "type": "latency", "attributes": {"latency": 5000}}]))
    writer.write(b"held")
    await asyncio.sleep(0.2)
    assert (await http(lab.api, "DELETE", "/proxies/t/toxics/slow"))[0] == 204
    assert await asyncio.wait_for(reader.readexactly(4), 1) == b"held"
    writer.close()


@pytest.mark.parametrize("action", ["disable", "delete"])
async def test_disabling_or_deleting_a_proxy_closes_its_connections(lab, action):
    port = await lab.proxy()
    reader, writer = await connect(port)
    await round_trip(reader, writer)
    if action == "disable":
        status, _, _ = await http(lab.api, "PATCH", "/proxies/t", {"enabled": False})
        assert status == 200
    else:
        assert (await http(lab.api, "DELETE", "/proxies/t"))[0] == 204
    state, _, elapsed = await outcome(reader, 2.0)
    assert state in ("eof", "reset") and elapsed < 0.5
    with pytest.raises(ConnectionRefusedError):
        await connect(port)


async def test_unreachable_upstream_closes_the_client(lab):
    reader, _writer = await connect(await lab.proxy(upstream=f"127.0.0.1:{free_port()}"))
    state, data, elapsed = await outcome(reader, 2.0)
    assert state in ("eof", "reset") and data == b"" and elapsed < 0.5


async def test_a_reset_client_does_not_disturb_other_connections(lab):
    port = await lab.proxy()
    reader_a, writer_a = await connect(port)
    reader_b, writer_b = await connect(port)
    sock = writer_a.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer_a.transport.abort()
    await asyncio.sleep(0.05)
    assert await round_trip(reader_b, writer_b) < 0.05
    writer_b.close()


async def test_slow_upstream_reader_applies_backpressure_not_buffering(lab):
    """An upstream that never reads: the proxy must stop reading the client, not buffer it all."""
    stalled: list[asyncio.StreamWriter] = []

    async def never_reads(reader, writer):
        stalled.append(writer)
        await asyncio.sleep(30)

    upstream = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = await lab.proxy(name="bp", upstream=f"127.0.0.1:{port_of(upstream)}")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    accepted = 0
    chunk = b"b" * 65536
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            accepted += sock.send(chunk)
        except BlockingIOError:
            await asyncio.sleep(0.05)
            try:
                accepted += sock.send(chunk)
            except BlockingIOError:
                break
    # kernel buffers on both hops plus the proxy's 256 KiB high-water mark: far below 64 MiB
    assert accepted < 64 * 1024 * 1024
    held = sum(link.directions["upstream"].budget.held for link in lab.server.collection.get("bp").links.values())
    assert held <= 512 * 1024
    sock.close()
    upstream.close()


async def test_seed_makes_toxicity_decisions_repeatable():
    # the toxic's effect is an outcome, not a timing: a connection the roll picks is
    # closed after one byte, the others echo (a latency threshold flaked under load)
    async def pattern(seed: int) -> list[bool]:
        echo = await start_echo()
        async with ProxyServer("127.0.0.1", 0, Context(seed=seed)) as server:
            lab = Lab(server, port_of(echo))
            port = await lab.proxy(toxics=[{"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 1}}])
            conns = [await connect(port) for _ in range(16)]
            picked = []
            for reader, writer in conns:
                try:
                    await round_trip(reader, writer)
                    picked.append(False)
                except (asyncio.IncompleteReadError, ConnectionError):
                    picked.append(True)
            for _, writer in conns:
                writer.close()
        echo.close()
        return picked

    first, again, other = await pattern(42), await pattern(42), await pattern(43)
    assert first == again
    assert 0 < sum(first) < 16
    assert first != other
