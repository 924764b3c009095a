"""The 64-byte round-trip tail: lab.proxy (and any other proxy builds) against direct loopback, in one run.

    python bench/tail_bench.py [--rounds 15] [--count 20000] [--size 64]
                               [--proxy NAME=SRC_DIR[,KEY=VALUE...]]... [--toxiproxy PATH] [--bulk-mib 256]
                               [--json FILE]

The measuring side is ``bench/ping.c`` (compiled here with the system C compiler): a client that sends
``--size`` bytes with TCP_NODELAY and waits for the echo, ``--count`` times per batch, and a threaded echo
server that every side shares as its upstream. Neither adds interpreter pauses of its own, so what shows
in the tail is the path under test.

Each round runs one batch per side: direct to the echo server, then through each proxy, the order rotated
every round so no side always runs first or last on a machine other processes share. Per side and round
the p50, p99 and p99.9 are taken; the report gives, per side, the median over rounds with the spread
(min..max), and the median of the per-round ratios to direct loopback with their spread; with
``--toxiproxy``, also each other proxy's per-round ratios to Toxiproxy and in how many rounds it did better.

``--proxy NAME=SRC_DIR`` runs ``python -m lab.proxy`` with ``SRC_DIR`` first on ``PYTHONPATH`` (a git
worktree of another commit gives a before/after in the same machine state); ``,KEY=VALUE`` sets
environment variables for that proxy (``LAB_PROXY_LOOP=asyncio``). With no ``--proxy``, this tree's
lab.proxy is measured as ``lab``. ``--toxiproxy PATH`` adds a real ``toxiproxy-server`` binary (built by
``compose/toxiproxy/build.sh``), started on loopback and given its proxies through its own HTTP API, like
every other side. ``--bulk-mib N`` (0: off) also pushes N MiB per side and round into a byte sink
(``bench/_upstreams.py``'s ``sized`` sink: told the size first, it answers without waiting for a half-close,
which Toxiproxy does not pass on) and reports Gbit/s and the ratio to direct.
``--churn PER_S`` opens and closes other connections through the side being measured meanwhile (what
brings a proxy's garbage collector out). ``proxy_cpu`` and ``proxy_wait`` are the proxy's time on a CPU
and runnable-but-waiting-for-one per round trip (``/proc/PID/task/*/schedstat``): where the tail is
run-queue wait, it is the machine's scheduler, not the proxy's code. ``proxy_preempt`` is how often, per
1000 round trips, one of the proxy's threads was switched out while still runnable (``nonvoluntary_ctxt_switches``
in ``/proc/PID/task/*/status``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proxy_bench import ROOT, api, bulk, free_port  # the same helpers, one place

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}


def percentile(ordered: list[int], pct: float) -> int:
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def build_ping(workdir: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise SystemExit("tail_bench: no C compiler (cc, gcc or clang) on PATH to build bench/ping.c")
    binary = workdir / "ping"
    subprocess.run([compiler, "-O2", "-pthread", "-o", str(binary), str(ROOT / "bench" / "ping.c")], check=True)
    return binary


def wait_for_api(port: int, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            api(port, "GET", "/version")
            return
        except OSError as error:
            if proc.poll() is not None:
                raise SystemExit(f"tail_bench: the proxy exited with {proc.returncode} before answering") from error
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def parse_proxy(spec: str) -> tuple[str, Path, dict[str, str]]:
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"tail_bench: --proxy wants NAME=SRC_DIR[,KEY=VALUE...], got {spec!r}")
    src, *pairs = rest.split(",")
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"tail_bench: --proxy {name}: {pair!r} is not KEY=VALUE")
        env[key] = value
    if not (Path(src) / "lab" / "proxy").is_dir():
        raise SystemExit(f"tail_bench: --proxy {name}: {src} has no lab/proxy package")
    return name, Path(src).resolve(), env


def schedstat(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one), summed over the process's threads (0, 0 off Linux)."""
    cpu = wait = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        cpu += int(fields[0])
        wait += int(fields[1])
    return cpu, wait


def preemptions(pid: int) -> int:
    """Times the process's threads were switched out while still runnable (nonvoluntary_ctxt_switches)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("nonvoluntary_ctxt_switches:"))
    return total


def ping(binary: Path, port: int, count: int, size: int) -> tuple[list[int], tuple[int, int, int]]:
    """Sorted round trips in ns, and the client's own (cpu ns, wait ns, pid)."""
    proc = subprocess.Popen([str(binary), "client", str(port), str(count), str(count // 10), str(size)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode:
        raise SystemExit(f"tail_bench: the ping client exited with {proc.returncode}: {err.strip()}")
    samples, client = [], (0, 0, proc.pid)
    for line in out.splitlines():
        if line.startswith("#sched "):
            cpu_ns, wait_ns, _ = line.split()[1:]
            client = (int(cpu_ns), int(wait_ns), proc.pid)
        else:
            samples.append(int(line))
    return sorted(samples), client


class Churn:
    """Opens and closes connections to one port at about ``per_s`` a second while a batch runs.

    Connection set-up and teardown is what makes a proxy allocate (links, directions, transports), so
    this is what brings its garbage collector out during the measurement; bounded by ``stop()``.
    """

    def __init__(self, port: int, per_s: int) -> None:
        self.port = port
        self.interval_s = 1.0 / per_s
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        held: list[socket.socket] = []
        while not self._stop.wait(self.interval_s):
            try:
                held.append(socket.create_connection(("127.0.0.1", self.port), timeout=2))
                self.opened += 1
            except OSError:
                continue
            if len(held) > 50:  # a pool's worth stays open, the oldest goes
                held.pop(0).close()
        for sock in held:
            sock.close()

    def __enter__(self) -> "Churn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=20000, help="round trips per batch")
    parser.add_argument("--size", type=int, default=64, help="bytes per ping")
    parser.add_argument("--proxy", action="append", default=[], metavar="NAME=SRC_DIR[,KEY=VALUE...]")
    parser.add_argument("--churn", type=int, default=0, metavar="PER_S",
                        help="open (and close) about PER_S other connections a second through the side measured")
    parser.add_argument("--toxiproxy", type=Path, help="a toxiproxy-server binary to measure as well")
    parser.add_argument("--bulk-mib", type=int, default=0, metavar="MIB",
                        help="also push MIB MiB per side and round through a byte sink (0: off)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if (not 1 <= args.rounds <= 200 or not 100 <= args.count <= 1_000_000 or not 0 <= args.churn <= 2000
            or not 0 <= args.bulk_mib <= 4096):
        raise SystemExit("tail_bench: --rounds 1..200, --count 100..1000000, --churn 0..2000, --bulk-mib 0..4096")
    if args.toxiproxy is not None and not os.access(args.toxiproxy, os.X_OK):
        raise SystemExit(f"tail_bench: --toxiproxy {args.toxiproxy} is not an executable file"
                         " (build one: compose/toxiproxy/build.sh SOURCE)")
    contestants = [parse_proxy(spec) for spec in args.proxy] or [("lab", ROOT, {})]

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="tail_bench.") as tmp:
        binary = build_ping(Path(tmp))
        echo = subprocess.Popen([str(binary), "echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(echo)
        try:
            echo_port = int(echo.stdout.readline())
            ports = {"direct": echo_port}
            sink_ports: dict[str, int] = {}
            if args.bulk_mib:
                sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_upstreams.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                procs.append(sink)
                sink_ports["direct"] = json.loads(sink.stdout.readline())["sized"]
            pids: dict[str, int] = {}
            launches = [(name, [sys.executable, "-m", "lab.proxy"], src, env) for name, src, env in contestants]
            if args.toxiproxy is not None:
                launches.append(("toxiproxy", [str(args.toxiproxy.resolve())], None, {}))
            for name, command, src, env in launches:
                api_port = free_port()
                full_env = {**os.environ, **env}
                if src is not None:
                    full_env["PYTHONPATH"] = os.pathsep.join(
                        [str(src), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
                proc = subprocess.Popen(command + ["-host", "127.0.0.1", "-port", str(api_port)],
                                        cwd=tmp, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(proc)
                pids[name] = proc.pid
                wait_for_api(api_port, proc)
                created = api(api_port, "POST", "/proxies",
                              {"name": "echo", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo_port}"})
                ports[name] = int(created["listen"].rsplit(":", 1)[1])
                if args.bulk_mib:
                    created = api(api_port, "POST", "/proxies", {"name": "sink", "listen": "127.0.0.1:0",
                                                                 "upstream": f"127.0.0.1:{sink_ports['direct']}"})
                    sink_ports[name] = int(created["listen"].rsplit(":", 1)[1])

            sides = list(ports)
            rounds: list[dict[str, dict[str, int]]] = []
            for index in range(args.rounds + 1):  # round 0 warms every side up and is dropped
                order = sides[index % len(sides):] + sides[: index % len(sides)]
                row = {}
                for side in order:
                    before = schedstat(pids[side]) if side in pids else (0, 0)
                    preempted_before = preemptions(pids[side]) if side in pids else 0
                    if args.churn:
                        with Churn(ports[side], args.churn):
                            samples, client = ping(binary, ports[side], args.count, args.size)
                    else:
                        samples, client = ping(binary, ports[side], args.count, args.size)
                    after = schedstat(pids[side]) if side in pids else (0, 0)
                    preempted = (preemptions(pids[side]) - preempted_before) if side in pids else 0
                    total = args.count * 11 // 10  # with the warm-up
                    row[side] = {key: percentile(samples, pct) for key, pct in PERCENTILES.items()}
                    # ns per round trip: the proxy's time on a CPU and runnable-but-waiting, the client's wait
                    row[side]["proxy_cpu"] = (after[0] - before[0]) // total
                    row[side]["proxy_wait"] = (after[1] - before[1]) // total
                    row[side]["client_wait"] = client[1] // total
                    row[side]["client_pid"] = client[2]  # for bench/sched_attribution.py
                    # per 1000 round trips: how often the proxy lost its CPU while it still had work
                    row[side]["proxy_preempt"] = preempted * 1000 * 1000 // total  # in 1/1000ths
                    if args.bulk_mib:  # after the pings, so it never overlaps them
                        seconds = bulk(sink_ports[side], args.bulk_mib << 20, sized=True)
                        row[side]["bulk_mbit_s"] = int((args.bulk_mib << 20) * 8 / seconds / 1e6)
                if index:
                    rounds.append(row)
                print(f"round {index}{' (warm-up)' if not index else ''}: " + "; ".join(
                    f"{side} " + "/".join(f"{row[side][k] / 1000:.0f}" for k in PERCENTILES)
                    + f" [{row[side]['proxy_cpu'] / 1000:.1f}/{row[side]['proxy_wait'] / 1000:.1f}]"
                    + (f" {row[side]['bulk_mbit_s'] / 1000:.1f} Gbit/s" if args.bulk_mib else "")
                    for side in sides)
                    + "  (p50/p99/p999 us [proxy cpu/wait-for-cpu us per round trip]"
                    + (" bulk" if args.bulk_mib else "") + ")", flush=True)
        finally:
            for proc in procs[1:]:
                if proc.stdin is not None:  # the upstreams end when their stdin closes
                    proc.stdin.close()
                else:
                    proc.terminate()
            for proc in procs[1:]:
                proc.wait(10)
            echo.stdin.close()
            echo.wait(10)

    def spread(values: list[float], fmt: str) -> str:
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}..{fmt.format(max(values))})"

    summary: dict[str, dict[str, object]] = {}
    print(f"\n{args.rounds} rounds x {args.count} round trips of {args.size} B; medians over rounds (min..max)")
    for side in sides:
        line = [f"{side:>12}"]
        summary[side] = {}
        for key in PERCENTILES:
            values = [r[side][key] / 1000 for r in rounds]
            summary[side][f"{key}_us"] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
            line.append(f"{key} {spread(values, '{:.0f}')} us")
            if side != "direct":
                ratios = [r[side][key] / r["direct"][key] for r in rounds]
                summary[side][f"{key}_ratio"] = {"median": statistics.median(ratios), "min": min(ratios),
                                                 "max": max(ratios)}
                line.append(f"= {spread(ratios, '{:.2f}')}x")
        if args.bulk_mib:
            values = [r[side]["bulk_mbit_s"] / 1000 for r in rounds]
            summary[side]["bulk_gbit_s"] = {"median": statistics.median(values), "min": min(values),
                                            "max": max(values)}
            line.append(f"bulk {spread(values, '{:.1f}')} Gbit/s")
            if side != "direct":
                ratios = [r[side]["bulk_mbit_s"] / r["direct"]["bulk_mbit_s"] for r in rounds]
                summary[side]["bulk_ratio"] = {"median": statistics.median(ratios), "min": min(ratios),
                                               "max": max(ratios)}
                line.append(f"= {spread(ratios, '{:.2f}')}x")
        for key in ("proxy_cpu", "proxy_wait", "client_wait", "proxy_preempt"):
            values = [r[side][key] / 1000 for r in rounds]
            summary[side][f"{key}_us"] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
            if key == "proxy_preempt" and side != "direct":
                line.append(f"{key} {spread(values, '{:.1f}')} per 1000 rt")
            elif side != "direct" or key == "client_wait":
                line.append(f"{key} {spread(values, '{:.1f}')} us/rt")
        print("  ".join(line))
    if "toxiproxy" in sides:  # each other proxy against the real Toxiproxy, paired round by round
        keys = [*PERCENTILES, *(["bulk_mbit_s"] if args.bulk_mib else [])]
        for side in sides:
            if side in ("direct", "toxiproxy"):
                continue
            line = [f"{side + ' / toxiproxy':>12}"]
            for key in keys:
                ratios = [r[side][key] / r["toxiproxy"][key] for r in rounds]
                better = sum(1 for ratio in ratios if (ratio > 1 if key == "bulk_mbit_s" else ratio < 1))
                summary[side][f"{key}_vs_toxiproxy"] = {"median": statistics.median(ratios), "min": min(ratios),
                                                        "max": max(ratios), "better_rounds": better}
                line.append(f"{key.replace('_mbit_s', '')} {spread(ratios, '{:.2f}')}x"
                            f" (better in {better}/{len(rounds)})")
            print("  ".join(line))
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count(),
                                         "count": args.count, "size": args.size, "summary": summary,
                                         "rounds": rounds, "pids": {**pids, "echo": echo.pid}},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
