"""What the protocol-aware toxics cost, and that the proxy without toxics is no slower than before.

    python bench/protocol_bench.py [--pg-port 25432] [--kafka-port 29092] [--baseline-root DIR]
                                   [--rounds 7] [--round-trips 2000] [--bulk-mib 128] [--json FILE]

Needs the local stack's real servers (``python -m lab up --backend local``: Postgres, user lab
with trust or SCRAM auth, Tansu). Starts its own ``python -m lab.proxy`` (this tree) and, with
--baseline-root (a checkout of the code before the change, e.g. ``git archive origin/main lab |
tar -x -C DIR``), a second one from there. Every round measures every side once, in a rotated
order, after one dropped warm-up round; figures are medians of per-round ratios with their
spread (min..max):

* Postgres: a simple Query ``SELECT 1`` round trip (to ReadyForQuery), direct, through a
  pass-through proxy (no toxic), and through the postgres toxic (a pattern that never matches:
  every message is framed and looked at, none is changed);
* Kafka: a Metadata v1 round trip (one topic), direct, pass-through, through the kafka toxic
  not matching (api_keys=produce: framed, paired, passed) and matching with no error (every
  response decoded, throttle set, re-encoded: the rewrite path);
* no toxic, this tree vs the baseline tree: 64-byte echo round trip and bulk throughput, each
  as a ratio to direct loopback in the same round.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from proxy_bench import api, bulk, free_port, percentile, round_trips  # noqa: E402


def start_proxy(root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lab.proxy", "-host", "127.0.0.1", "-port", str(port)],
                            cwd=root, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            api(port, "GET", "/version")
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def add_proxy(api_port: int, name: str, upstream_port: int, toxic: dict | None = None) -> int:
    created = api(api_port, "POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                                 "upstream": f"127.0.0.1:{upstream_port}"})
    if toxic is not None:
        api(api_port, "POST", f"/proxies/{name}/toxics", toxic)
    return int(created["listen"].rsplit(":", 1)[1])  # type: ignore[index]


# -- Postgres ---------------------------------------------------------------------------------


def _recv_until_ready(sock: socket.socket, buf: bytearray) -> None:
    """Read messages until a ReadyForQuery; leaves anything after it in ``buf``."""
    while True:
        pos = 0
        while len(buf) - pos >= 5:
            kind = buf[pos:pos + 1]
            length = struct.unpack_from("!i", buf, pos + 1)[0]
            if len(buf) - pos < 1 + length:
                break
            pos += 1 + length
            if kind == b"Z":
                del buf[:pos]
                return
            if kind == b"E":
                raise RuntimeError(f"server error: {bytes(buf[:pos])!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk


def _message(sock: socket.socket, buf: bytearray) -> tuple[bytes, bytes]:
    """The next whole backend message: (type, body)."""
    while len(buf) < 5 or len(buf) < 1 + struct.unpack_from("!i", buf, 1)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    kind, length = bytes(buf[:1]), struct.unpack_from("!i", buf, 1)[0]
    body = bytes(buf[5:1 + length])
    del buf[:1 + length]
    return kind, body


def _password_message(payload: bytes) -> bytes:
    return b"p" + struct.pack("!i", 4 + len(payload)) + payload


def _scram(sock: socket.socket, buf: bytearray, password: str) -> None:
    """SCRAM-SHA-256 (RFC 7677), as Postgres asks for it; the lab's server uses it."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    sock.sendall(_password_message(b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first))
    kind, body = _message(sock, buf)
    if kind != b"R" or struct.unpack_from("!i", body)[0] != 11:
        raise RuntimeError(f"unexpected SCRAM step: {kind!r} {body[:40]!r}")
    server_first = body[4:].decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    final_bare = f"c=biws,r={fields['r']}"
    auth = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    sock.sendall(_password_message(f"{final_bare},p={proof}".encode()))


def pg_connect(port: int, password: str) -> tuple[socket.socket, bytearray]:
    """A session as user lab on database lab, trust or SCRAM, ready for queries."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    params = b"user\x00lab\x00database\x00lab\x00\x00"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    buf = bytearray()
    kind, body = _message(sock, buf)
    if kind == b"R" and struct.unpack_from("!i", body)[0] == 10:
        _scram(sock, buf, password)
    elif kind != b"R":
        raise RuntimeError(f"startup refused: {body!r}")
    _recv_until_ready(sock, buf)
    return sock, buf


def pg_round_trips(port: int, count: int, password: str) -> list[float]:
    sock, buf = pg_connect(port, password)
    with sock:
        body = b"SELECT 1\x00"
        query = b"Q" + struct.pack("!i", 4 + len(body)) + body
        samples = []
        for index in range(count + 100):
            started = time.perf_counter()
            sock.sendall(query)
            _recv_until_ready(sock, buf)
            if index >= 100:
                samples.append(time.perf_counter() - started)
        sock.sendall(b"X\x00\x00\x00\x04")
        return samples


# -- Kafka ------------------------------------------------------------------------------------


def kafka_round_trips(port: int, count: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for index in range(count + 100):
            client_id = b"bench"
            topic = b"protocol-bench"  # one named topic: the response stays small however many exist
            payload = (struct.pack("!hhih", 3, 1, index, len(client_id)) + client_id
                       + struct.pack("!ih", 1, len(topic)) + topic)
            started = time.perf_counter()
            sock.sendall(struct.pack("!i", len(payload)) + payload)
            head = b""
            while len(head) < 4:
                head += sock.recv(4 - len(head))
            size = struct.unpack("!i", head)[0]
            got = 0
            while got < size:
                got += len(sock.recv(size - got))
            if index >= 100:
                samples.append(time.perf_counter() - started)
        return samples


# -- main -------------------------------------------------------------------------------------


def measure_rounds(rounds: int, sides: dict[str, Callable[[], object]]) -> list[dict[str, object]]:
    """Every side once per round, the order rotated each round; round 0 is a dropped warm-up."""
    names = list(sides)
    out = []
    for index in range(rounds + 1):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        row = {name: sides[name]() for name in order}
        if index:
            out.append(row)
        pass
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("LAB_PG_PORT", "25432")))
    parser.add_argument("--kafka-port", type=int, default=int(os.environ.get("LAB_KAFKA_PORT", "29092")))
    parser.add_argument("--baseline-root", type=Path)
    parser.add_argument("--pg-password", default=os.environ.get("LAB_PG_PASSWORD"),
                        help="user lab's password (default: LAB_PG_PASSWORD, else <LAB_STATE_DIR>/pg_password)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--bulk-mib", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.pg_password is None:
        state = Path(os.environ.get("LAB_STATE_DIR", ROOT / ".lab"))
        args.pg_password = (state / "pg_password").read_text().strip() if (state / "pg_password").exists() else ""

    upstreams = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_upstreams.py")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    echo_ports = json.loads(upstreams.stdout.readline())  # type: ignore[union-attr]
    procs = []
    results: dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        proc, after = start_proxy(ROOT)
        procs.append(proc)
        n = args.round_trips
        ports = {
            "pg_passthrough": add_proxy(after, "pg", args.pg_port),
            "pg_toxic": add_proxy(after, "pg_toxic", args.pg_port, {"type": "postgres", "attributes": {
                "pattern": "lab_never_matches", "sqlstate": "40001"}}),
            "kafka_passthrough": add_proxy(after, "kafka", args.kafka_port),
            "kafka_toxic_other_key": add_proxy(after, "kafka_other", args.kafka_port, {"type": "kafka", "attributes": {
                "api_keys": "produce", "error": "NOT_LEADER_OR_FOLLOWER"}}),
            "kafka_toxic_rewrite": add_proxy(after, "kafka_rewrite", args.kafka_port, {"type": "kafka", "attributes": {
                "api_keys": "metadata", "error": "", "throttle_time_ms": 0}}),
            "echo_after": add_proxy(after, "echo", echo_ports["echo"]),
            "sink_after": add_proxy(after, "sink", echo_ports["sink"]),
        }
        sides: dict[str, Callable[[], object]] = {
            "pg_direct": lambda: pg_round_trips(args.pg_port, n, args.pg_password),
            "pg_passthrough": lambda: pg_round_trips(ports["pg_passthrough"], n, args.pg_password),
            "pg_toxic": lambda: pg_round_trips(ports["pg_toxic"], n, args.pg_password),
            "kafka_direct": lambda: kafka_round_trips(args.kafka_port, n),
            "kafka_passthrough": lambda: kafka_round_trips(ports["kafka_passthrough"], n),
            "kafka_toxic_other_key": lambda: kafka_round_trips(ports["kafka_toxic_other_key"], n),
            "kafka_toxic_rewrite": lambda: kafka_round_trips(ports["kafka_toxic_rewrite"], n),
            "echo_direct": lambda: round_trips(echo_ports["echo"], n),
            "echo_after": lambda: round_trips(ports["echo_after"], n),
            "bulk_direct": lambda: bulk(echo_ports["sink"], args.bulk_mib << 20),
            "bulk_after": lambda: bulk(ports["sink_after"], args.bulk_mib << 20),
        }
        if args.baseline_root is not None:
            proc, before = start_proxy(args.baseline_root)
            procs.append(proc)
            echo_before = add_proxy(before, "echo", echo_ports["echo"])
            sink_before = add_proxy(before, "sink", echo_ports["sink"])
            sides["echo_before"] = lambda: round_trips(echo_before, n)
            sides["bulk_before"] = lambda: bulk(sink_before, args.bulk_mib << 20)
        rows = measure_rounds(args.rounds, sides)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        upstreams.stdin.close()  # type: ignore[union-attr]
        upstreams.wait(10)

    def p50(row: dict, side: str) -> float:
        return percentile(row[side], 50)  # type: ignore[arg-type]

    def ratio(key: str, fn: Callable[[dict], float]) -> None:
        results[key] = summary([fn(row) for row in rows])

    for proto in ("pg", "kafka"):
        toxics = ["pg_toxic"] if proto == "pg" else ["kafka_toxic_other_key", "kafka_toxic_rewrite"]
        results[f"{proto}_p50_us"] = {side: statistics.median(p50(r, side) for r in rows) * 1e6
                                      for side in [f"{proto}_direct", f"{proto}_passthrough", *toxics]}
        for toxic in toxics:
            ratio(f"{toxic}_vs_passthrough", lambda r, t=toxic, p=proto: p50(r, t) / p50(r, f"{p}_passthrough"))
            ratio(f"{toxic}_added_vs_passthrough_added", lambda r, t=toxic, p=proto: (
                (p50(r, t) - p50(r, f"{p}_direct")) / (p50(r, f"{p}_passthrough") - p50(r, f"{p}_direct"))))
    ratio("echo_after_p50_ratio", lambda r: p50(r, "echo_after") / p50(r, "echo_direct"))
    ratio("bulk_after_ratio", lambda r: r["bulk_direct"] / r["bulk_after"])  # type: ignore[operator]
    if args.baseline_root is not None:
        ratio("echo_before_p50_ratio", lambda r: p50(r, "echo_before") / p50(r, "echo_direct"))
        ratio("bulk_before_ratio", lambda r: r["bulk_direct"] / r["bulk_before"])  # type: ignore[operator]
        ratio("bulk_after_over_before", lambda r: r["bulk_before"] / r["bulk_after"])  # type: ignore[operator]

    def show(key: str) -> str:
        r = results[key]
        return f"{r['median']:.2f}x ({r['min']:.2f}..{r['max']:.2f})"  # type: ignore[index]

    print(f"{args.rounds} rounds, medians of per-round ratios (min..max)")
    for proto in ("pg", "kafka"):
        print(f"{proto} p50 round trip (us): " + ", ".join(f"{k} {v:.1f}"
                                                         for k, v in results[f"{proto}_p50_us"].items()))  # type: ignore[union-attr]
    for key in ("pg_toxic", "kafka_toxic_other_key", "kafka_toxic_rewrite"):
        print(f"{key}: {show(key + '_vs_passthrough')} of pass-through round trip; added latency "
              f"{show(key + '_added_vs_passthrough_added')} of pass-through's (goal <= 2x)")
    print(f"no toxic, this tree: echo p50 {show('echo_after_p50_ratio')} of direct, bulk {show('bulk_after_ratio')}")
    if args.baseline_root is not None:
        print(f"no toxic, baseline:  echo p50 {show('echo_before_p50_ratio')} of direct, bulk {show('bulk_before_ratio')}")
        print(f"bulk, this tree over baseline: {show('bulk_after_over_before')}")
    if args.json:
        slim = {k: v for k, v in results.items()}
        args.json.write_text(json.dumps(slim, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
