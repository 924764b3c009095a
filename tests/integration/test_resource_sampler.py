"""The resource sampler on real processes: a child that opens fds, TCP connections and a grandchild."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from lab.scenario.history import History
from lab.scenario.resources import ResourceSampler, _tcp_inodes_here, _tcp_inodes_of, sample_tree

pytestmark = pytest.mark.integration

# Opens FILES files and CONNECTIONS loopback TCP connections (both ends its own), starts a grandchild that
# holds GRANDCHILD_FILES more, says "ready", then waits to be killed.
CHILD = """
import os, socket, subprocess, sys, time
files, connections, grandchild_files = map(int, sys.argv[1:4])
held = [open(os.devnull) for _ in range(files)]
server = socket.create_server(("127.0.0.1", 0))
for _ in range(connections):
    client = socket.create_connection(server.getsockname())
    held += [client, server.accept()[0]]
grandchild = subprocess.Popen([sys.executable, "-c",
    f"import os, time; h = [open(os.devnull) for _ in range({grandchild_files})]; print('ready', flush=True); "
    "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
grandchild.stdout.readline()
print("ready", flush=True)
time.sleep(60)
"""


def _child(files: int, connections: int, grandchild_files: int) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(files), str(connections), str(grandchild_files)],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _stop(child: subprocess.Popen) -> None:
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=10)


def test_fds_connections_and_the_process_tree_are_counted():
    small, big = _child(1, 1, 1), _child(11, 4, 6)
    try:
        a, _ = sample_tree(psutil.Process(small.pid), _tcp_inodes_here())
        b, members = sample_tree(psutil.Process(big.pid), _tcp_inodes_here())
        alone, _ = sample_tree(psutil.Process(big.pid), _tcp_inodes_here(), members=[big.pid])
        # another network namespace's table is read from /proc (a container's): the same count here
        from_proc, _ = sample_tree(psutil.Process(big.pid), _tcp_inodes_of(big.pid), members)
        rss_bytes, threads = psutil.Process(big.pid).memory_info().rss, psutil.Process(big.pid).num_threads()
    finally:
        _stop(small)
        _stop(big)
    assert a["processes"] == b["processes"] == 2 and alone["processes"] == 1 and len(members) == 2
    assert alone["threads"] == threads and abs(alone["rss_bytes"] - rss_bytes) < 1 << 20  # as psutil reads them
    assert b["fds"] - a["fds"] == 10 + 2 * 3 + 5  # files, both ends of each connection, the grandchild's files
    # both ends of each connection; the listening socket is not a connection
    assert (a["tcp_connections"], b["tcp_connections"], from_proc["tcp_connections"]) == (2, 8, 8)
    assert b["fds"] - alone["fds"] >= 6  # without descendants the grandchild's files are not counted


def test_the_sampler_follows_a_component_that_was_restarted():
    first = _child(1, 0, 0)
    pids = {"component": first.pid}
    history = History()
    sampler = ResourceSampler(history, ("component",), lambda name: pids[name], interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while sum(e.get("pid") == first.pid for e in history.of("resource")) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        _stop(first)
        second = _child(3, 0, 0)
        pids["component"] = second.pid
        while not any(e.get("pid") == second.pid for e in history.of("resource")) and time.monotonic() < deadline:
            time.sleep(0.05)
        _stop(second)
    finally:
        sampler.stop()
    samples = list(history.of("resource", process="component"))
    assert {e.get("pid") for e in samples} == {first.pid, second.pid}
    # a running component is sampled every interval (0.05 s; tolerance 10x for a loaded machine), not only
    # when it is looked up (at most once a second)
    times = [e.t for e in samples if e.get("pid") == first.pid]
    assert len(times) >= 5 and max(b - a for a, b in zip(times, times[1:])) < 0.5
    assert any(e.get("process") == "workload" and e.get("pid") == os.getpid() for e in history.of("resource"))
    assert [e.get("samples") > 0 and e.get("cpu_s") >= 0 for e in history.of("sampler")] == [True]
