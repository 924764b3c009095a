"""The request rate Locust sustains here (as the lab drives it: FastHttpUser in its own gevent thread of the
lab's process) against a trivial service: a plain asyncio HTTP server answering "ok", in a process of its own.

    python bench/locust_bench.py [--users 10] [--seconds 5]

Prints successful requests/s over the measured window (after a 1 s ramp), the p50/p99 latency, and the CPU
time the lab's process (Locust's thread) spent per request: on a shared machine the rate depends on what
else runs, the CPU per request much less, and its inverse is the rate Locust would sustain on a free core.
Run it inside `unshare -n` on a shared machine: it opens a loopback port.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.scenario.http_load import HttpCall, LocustLoad  # noqa: E402

SERVER = r'''
import asyncio, sys
async def handle(reader, writer):
    try:
        while await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("up", flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        load = LocustLoad(HttpCall(f"http://127.0.0.1:{port}/"), users=args.users, spawn_rate=args.users * 10)
        load.start()
        time.sleep(1.0)
        load.drain()
        started, cpu_started = time.monotonic(), time.process_time()
        time.sleep(args.seconds)
        window = load.drain()
        elapsed, cpu_s = time.monotonic() - started, time.process_time() - cpu_started
        load.stop()
    finally:
        server.terminate()
        server.wait(5)
    ok = sorted(r.latency_s for r in window if r.error is None)
    errors = len(window) - len(ok)
    print(f"{args.users} FastHttpUsers, {elapsed:.1f} s: {len(ok) / elapsed:,.0f} successful req/s, {errors} errors, "
          f"p50 {ok[len(ok) // 2] * 1000:.2f} ms, p99 {ok[int(0.99 * (len(ok) - 1))] * 1000:.2f} ms; "
          f"Locust's CPU {cpu_s / max(len(window), 1) * 1e6:.0f} us per request (at most "
          f"{len(window) / cpu_s if cpu_s else 0:,.0f} req/s on a core of its own)")


if __name__ == "__main__":
    main()
