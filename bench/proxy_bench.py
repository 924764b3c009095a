"""lab.proxy against direct loopback, interleaved round by round in one run.

    python bench/proxy_bench.py [--rounds 7] [--bulk-mib 256] [--round-trips 5000] [--idle 1000] [--json FILE]

Measures, through the real ``python -m lab.proxy`` server (a subprocess) and
directly against the same upstream process, in --rounds rounds after one warm-up
round; each round measures both sides, alternating which goes first, and the
figures are the median of the per-round ratios with their spread (min..max):
  * 64-byte echo round trip (TCP_NODELAY): p50 and p99 ratios;
  * bulk transfer of --bulk-mib MiB: throughput ratio;
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


def round_trips(port: int, count: int, warmup: int = 200) -> list[float]:
    """``count`` timed 64-byte round trips after ``warmup`` untimed ones (a few suffice behind a latency toxic,
    where each takes its 100 ms: 200 of them cost 20 s)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 64
        samples = []
        for index in range(count + warmup):
            started = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < 64:
                got += len(sock.recv(64 - got))
            if index >= warmup:
                samples.append(time.perf_counter() - started)
        return samples


def bulk(port: int, total: int, sized: bool = False) -> float:
    """Seconds to push ``total`` bytes into the sink and have it confirm the count. The sink learns where the
    data ends from a half-close, or, ``sized``, from an 8-byte header saying how much comes (for a proxy that
    closes both directions when one ends, as Toxiproxy does: bench/_upstreams.py's sized sink)."""
    block = memoryview(bytearray(1 << 20))
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        started = time.perf_counter()
        if sized:
            sock.sendall(total.to_bytes(8, "big"))
        sent = 0
        while sent < total:
            sent += sock.send(block[: min(len(block), total - sent)])
        if not sized:
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
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--bulk-mib", type=int, default=256)
    parser.add_argument("--round-trips", type=int, default=5000)
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

        total = args.bulk_mib << 20
        rounds = []
        for index in range(args.rounds + 1):  # round 0 warms both sides up and is dropped
            sides = [("direct", ports), ("proxy", proxied)]
            if index % 2:
                sides.reverse()
            measured = {name: (round_trips(where["echo"], args.round_trips), bulk(where["sink"], total))
                        for name, where in sides}
            (d_rtt, d_bulk), (p_rtt, p_bulk) = measured["direct"], measured["proxy"]
            row = {"direct_p50_us": percentile(d_rtt, 50) * 1e6, "direct_p99_us": percentile(d_rtt, 99) * 1e6,
                   "proxy_p50_us": percentile(p_rtt, 50) * 1e6, "proxy_p99_us": percentile(p_rtt, 99) * 1e6,
                   "p50_ratio": percentile(p_rtt, 50) / percentile(d_rtt, 50),
                   "p99_ratio": percentile(p_rtt, 99) / percentile(d_rtt, 99),
                   "bulk_ratio": d_bulk / p_bulk, "direct_gbit_s": total * 8 / d_bulk / 1e9,
                   "proxy_gbit_s": total * 8 / p_bulk / 1e9}
            if index:
                rounds.append(row)
            print(f"round {index}{' (warm-up)' if not index else ''}: rtt p50 {row['proxy_p50_us']:.1f} vs "
                  f"{row['direct_p50_us']:.1f} us, p99 {row['proxy_p99_us']:.1f} vs {row['direct_p99_us']:.1f} us; "
                  f"bulk {row['proxy_gbit_s']:.2f} vs {row['direct_gbit_s']:.2f} Gbit/s", flush=True)
            proxy_rtt = p_rtt
        results["rounds"] = rounds
        for key in ("p50_ratio", "p99_ratio", "bulk_ratio"):
            values = [r[key] for r in rounds]
            results[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}

        api(api_port, "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 100}})
        lat = round_trips(proxied["echo"], args.latency_round_trips, warmup=3)
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

    def spread(key: str) -> str:
        r = results[key]
        return f"{r['median']:.2f}x (rounds {r['min']:.2f}..{r['max']:.2f})"

    print(f"lab.proxy event loop: {args.loop}; {args.rounds} rounds, medians of per-round ratios to direct loopback")
    print(f"round trip 64 B   p50 {spread('p50_ratio')} (target <= 2.1x), p99 {spread('p99_ratio')}")
    print(f"bulk {args.bulk_mib} MiB      {spread('bulk_ratio')} of direct throughput (target >= 0.28x)")
    lat = results["latency_toxic_ms"]
    print(f"latency 100 ms    added p50 {lat['added_p50']:.2f} ms  p99 {lat['added_p99']:.2f} ms"
          f"   -> error p99 {lat['error_p99']:+.2f} ms (target <= 2 ms)")
    print(f"idle connections  {results['idle_kib_per_connection']:.1f} KiB RSS each (target <= 72 KiB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
