"""`lab up` cold and warm, and `lab down`, beside a bare Postgres cluster in the same run.

    python bench/stack_bench.py [--rounds 3] [--json FILE]

Each round: down --purge; up (cold: no data directory); down; up (warm: data
kept); down. Times are whole commands as a user runs them (`python -m lab ...`).
The baseline is what the stack cannot beat: initdb + postgres start + first
query, on the same machine, in the same run.
Targets (issue #3): cold <= 3 s, warm <= 1.5 s, down <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def bare_postgres(bin_dir: Path, port: int) -> float:
    """initdb + postgres + SELECT 1: the floor for a cold start."""
    work = Path(tempfile.mkdtemp(prefix="pg-baseline-", dir="/var/tmp"))
    user = None
    if os.geteuid() == 0:
        user = "chaoslab"
        shutil.chown(work, user)
    started = time.perf_counter()
    subprocess.run([str(bin_dir / "initdb"), "-D", str(work / "data"), "-U", "lab", "--auth=trust", "--no-sync",
                    "--no-instructions"], check=True, capture_output=True, user=user)
    server = subprocess.Popen([str(bin_dir / "postgres"), "-D", str(work / "data"), "-h", "127.0.0.1", "-p",
                               str(port), "-c", "unix_socket_directories=", "-c", "fsync=off"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user)
    try:
        while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"]).returncode:
            time.sleep(0.01)
        subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "lab", "-d", "postgres",
                        "-tAc", "SELECT 1"], check=True, capture_output=True)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from lab.config import Settings
    from lab.stack.postgres import find_bin_dir, os_user

    settings = Settings.from_env({})
    os_user(settings)  # make sure the Postgres user exists before anything is timed
    bin_dir = find_bin_dir(settings)
    api, pg_proxy, kafka_proxy, pg, kafka, baseline_port = free_ports(6)
    state = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    env = {**os.environ, "LAB_BACKEND": "local", "LAB_STATE_DIR": str(state), "LAB_PROXY_API_PORT": str(api),
           "LAB_PG_PROXY_PORT": str(pg_proxy), "LAB_KAFKA_PROXY_PORT": str(kafka_proxy), "LAB_PG_PORT": str(pg),
           "LAB_KAFKA_PORT": str(kafka)}
    lab = [sys.executable, "-m", "lab"]
    cold, warm, down, baseline = [], [], [], []
    try:
        for _ in range(args.rounds):
            baseline.append(bare_postgres(bin_dir, baseline_port))
            timed(lab + ["down", "--purge"], env)
            cold.append(timed(lab + ["up"], env))
            down.append(timed(lab + ["down"], env))
            warm.append(timed(lab + ["up"], env))
            down.append(timed(lab + ["down"], env))
    finally:
        subprocess.run(lab + ["down", "--purge"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
    results = {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
               for name, v in (("cold_up", cold), ("warm_up", warm), ("down", down), ("bare_postgres", baseline))}
    base = results["bare_postgres"]["median_s"]
    print(f"bare Postgres (initdb+start+query) {base:.2f} s   <- baseline, same run")
    for name, target in (("cold_up", 3.0), ("warm_up", 1.5), ("down", 2.0)):
        r = results[name]
        print(f"lab {name.replace('_', ' '):<8} median {r['median_s']:.2f} s (min {r['min_s']:.2f}, max {r['max_s']:.2f})"
              f"  = {r['median_s'] / base:.2f}x baseline   target <= {target:g} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
