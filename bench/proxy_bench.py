"""lab.proxy against direct loopback, side by side in one run.

    python bench/proxy_bench.py [--bulk-mib 1024] [--round-trips 20000] [--idle 1000] [--json FILE]

Measures, through the real ``python -m lab.proxy`` server (a subprocess) and
directly against the same upstream process:
  * 64-byte echo round trip (TCP_NODELAY): p50 and p99, and their ratio;
  * bulk transfer of --bulk-mib MiB: Gbit/s, and the ratio;
  * a 100 ms latency toxic: how far the added delay is from 100 ms, p50 and p99;
  * RSS of the proxy per idle connection.
Reference (issue #2): Toxiproxy 2.12 on a machine like this reached bulk 0.28x,
round-trip p50 2.1x, latency error +1.7 ms at p99, ~72 KiB per idle connection.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(port: int, method: str, path: str, body: dict | None = None) -> dict | None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        payload = response.read()
    return json.loads(payload) if payload.strip() else None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def round_trips(port: int, count: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 64
        samples = []
        for index in range(count + 200):
            started = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < 64:
                got += len(sock.recv(64 - got))
            if index >= 200:  # warm-up
                samples.append(time.perf_counter() - started)
        return samples


def bulk(port: int, total: int) -> float:
    """Seconds to push ``total`` bytes into the sink and have it confirm the count."""
    block = memoryview(bytearray(1 << 20))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sent = 0
        while sent < total:
            sent += sock.send(block[: min(len(block), total - sent)])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while len(answer) < 8:
            chunk = sock.recv(8 - len(answer))
            if not chunk:
                break
            answer += chunk
        elapsed = time.perf_counter() - started
    if int.from_bytes(answer, "big") != total:
        raise RuntimeError(f"sink counted {int.from_bytes(answer, 'big')} bytes, sent {total}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk-mib", type=int, default=1024)
    parser.add_argument("--round-trips", type=int, default=20000)
    parser.add_argument("--latency-round-trips", type=int, default=200)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--loop", choices=["auto", "asyncio"], default="auto",
                        help="the proxy's event loop: auto (uvloop when installed) or plain asyncio")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.idle + 256)), hard))
    upstreams = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_upstreams.py")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ports = json.loads(upstreams.stdout.readline())
    api_port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "lab.proxy", "-host", "127.0.0.1", "-port", str(api_port)],
                             cwd=ROOT, stderr=subprocess.DEVNULL, env={**os.environ, "LAB_PROXY_LOOP": args.loop})
    results: dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "loop": args.loop}
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                api(api_port, "GET", "/version")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        proxied = {}
        for name, port in ports.items():
            created = api(api_port, "POST", "/proxies",
                          {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{port}"})
            proxied[name] = int(created["listen"].rsplit(":", 1)[1])

        direct_rtt = round_trips(ports["echo"], args.round_trips)
        proxy_rtt = round_trips(proxied["echo"], args.round_trips)
        results["rtt_us"] = {
            "direct_p50": percentile(direct_rtt, 50) * 1e6, "direct_p99": percentile(direct_rtt, 99) * 1e6,
            "proxy_p50": percentile(proxy_rtt, 50) * 1e6, "proxy_p99": percentile(proxy_rtt, 99) * 1e6,
        }
        results["rtt_p50_ratio"] = percentile(proxy_rtt, 50) / percentile(direct_rtt, 50)

        total = args.bulk_mib << 20
        direct_s = bulk(ports["sink"], total)
        proxy_s = bulk(proxied["sink"], total)
        results["bulk_gbit_s"] = {"direct": total * 8 / direct_s / 1e9, "proxy": total * 8 / proxy_s / 1e9}
        results["bulk_ratio"] = direct_s / proxy_s

        api(api_port, "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 100}})
        lat = round_trips(proxied["echo"], args.latency_round_trips)
        base_p50 = percentile(proxy_rtt, 50)
        added = [sample - base_p50 for sample in lat]
        results["latency_toxic_ms"] = {
            "added_p50": percentile(added, 50) * 1e3, "added_p99": percentile(added, 99) * 1e3,
            "error_p99": (percentile(added, 99) - 0.100) * 1e3,
        }
        api(api_port, "DELETE", "/proxies/echo/toxics/latency_downstream")

        before = rss_kib(proxy.pid)
        idle = [socket.create_connection(("127.0.0.1", proxied["hold"])) for _ in range(args.idle)]
        time.sleep(2.0)  # let the proxy accept and dial every one
        after = rss_kib(proxy.pid)
        results["idle_kib_per_connection"] = (after - before) / args.idle
        for sock in idle:
            sock.close()
    finally:
        proxy.terminate()
        proxy.wait(10)
        upstreams.stdin.close()
        upstreams.wait(10)

    rtt = results["rtt_us"]
    print(f"lab.proxy event loop: {args.loop}")
    print(f"round trip 64 B   direct p50 {rtt['direct_p50']:.1f} us  p99 {rtt['direct_p99']:.1f} us")
    print(f"                  proxy  p50 {rtt['proxy_p50']:.1f} us  p99 {rtt['proxy_p99']:.1f} us"
          f"   -> p50 {results['rtt_p50_ratio']:.2f}x direct (target <= 2.1x)")
    gbit = results["bulk_gbit_s"]
    print(f"bulk {args.bulk_mib} MiB     direct {gbit['direct']:.2f} Gbit/s  proxy {gbit['proxy']:.2f} Gbit/s"
          f"   -> {results['bulk_ratio']:.2f}x direct (target >= 0.28x)")
    lat = results["latency_toxic_ms"]
    print(f"latency 100 ms    added p50 {lat['added_p50']:.2f} ms  p99 {lat['added_p99']:.2f} ms"
          f"   -> error p99 {lat['error_p99']:+.2f} ms (target <= 2 ms)")
    print(f"idle connections  {results['idle_kib_per_connection']:.1f} KiB RSS each (target <= 72 KiB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
