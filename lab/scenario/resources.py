"""Resource samples: open fds, RSS, threads and TCP connections of the workload and each stack component.

A ``ResourceSampler`` runs in its own thread (the samples are blocking /proc reads, and a thread keeps
sampling while the event loop is busy or stuck) and adds one ``resource`` event per process and sample to
the run's History, ``interval_s`` apart:

    {"kind": "resource", "process": "workload"|"proxy"|"postgres"|"kafka", "pid", "fds", "rss_bytes",
     "threads", "tcp_connections", "processes"}

"workload" is this process alone (where the clients under test run; a component that a fault restarts
from here is its child, and is not counted in it). A component is sampled as its process tree (the
postmaster with its backends, summed), found through the Backend's ``main_process``; a component that
is down (killed by a fault) is skipped for that sample and looked up again at most once a second, so a
restart is followed. ``tcp_connections`` counts TCP sockets in any state but LISTEN.

When the sampler stops it adds one ``sampler`` event: how many samples it took and its thread's CPU
time, for measuring what sampling costs (bench/recording_bench.py).

``no_resource_growth`` is the check built on them: a leak shows as fds or connections that keep
growing across the fault and are still there once the scenario recovered.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import threading
import time
from typing import Any, Callable

from .checks import PASS, Check, Verdict
from .history import FAIL, OK, UNKNOWN, History

INTERVAL_S = 0.5  # twice a second: at 4/s a Postgres tree of ~20 processes costs the sampler ~1.5% of a core
RELOOKUP_S = 1.0
WORKLOAD = "workload"
CHECKED_PHASES = ("baseline", "recovery")  # the growth check compares their ends


TCP_LISTEN = "0A"  # the state column of /proc/net/tcp
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x1, 0x300, 2, 3
ALL_BUT_LISTEN = 0xFFF & ~(1 << 10)  # a bit per TCP state; LISTEN is state 10
INODE_OFFSET = 16 + 68  # nlmsghdr, then inet_diag_msg's idiag_inode


def _tcp_inodes_here() -> set[int]:
    """Inodes of this network namespace's TCP sockets in any state but LISTEN, by a sock_diag dump (what
    ``ss`` does): ~2 ms, where reading /proc/net/tcp walks the kernel's whole established hash (~25 ms
    here even when empty) and psutil's per-process ``net_connections`` does that again for each process."""
    inodes: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as link:
        link.settimeout(1.0)
        for family in (socket.AF_INET, socket.AF_INET6):
            request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, ALL_BUT_LISTEN)
            link.send(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                                  family, 0) + request)
            done = False
            while not done:
                data = link.recv(65536)
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == NLMSG_DONE:
                        done = True
                        break
                    if kind == NLMSG_ERROR:
                        raise OSError("sock_diag answered with an error")
                    inodes.add(struct.unpack_from("=I", data, offset + INODE_OFFSET)[0])
                    offset += (length + 3) & ~3
                done = done or not data
    return inodes


def _tcp_inodes_of(pid: int) -> set[int]:
    """The same for ``pid``'s network namespace when it is another one (a container): its /proc tables."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] != TCP_LISTEN:
                        inodes.add(int(fields[9]))
        except OSError:
            continue
    return inodes


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from the kernel's per-thread children lists (no scan of every process)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return found


def _fds(pid: int, tcp_inodes: set[int]) -> tuple[int, int]:
    """(open fds, TCP connections among them) of one process."""
    count = tcp = 0
    with os.scandir(f"/proc/{pid}/fd") as entries:
        for entry in entries:
            count += 1
            try:
                link = os.readlink(entry.path)
            except OSError:  # closed while we looked
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in tcp_inodes:
                tcp += 1
    return count, tcp


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int) -> tuple[int, int]:
    """(RSS in bytes, threads) of one process, from one read of /proc/<pid>/stat (psutil's memory_info and
    num_threads read two files through several layers: three times the cost, measured)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        data = stat.read()
    fields = data[data.rindex(b")") + 2:].split()  # from field 3 (state) on: the name may hold spaces
    return int(fields[21]) * PAGE_SIZE, int(fields[17])


def sample_tree(process: Any, tcp_inodes: set[int], members: list[int] | None = None
                ) -> tuple[dict[str, int], list[int]]:
    """fds, RSS (summed over the tree, so shared pages count more than once), threads and TCP connections
    (sockets whose inode is in ``tcp_inodes``) of ``process`` (a psutil.Process, which guards against a
    reused pid) and its descendants, and the pids that were read.

    ``members``: the pids to read (a tree found by an earlier sample, or just the root); None finds the
    tree now. A member that is gone is left out. Raises psutil.NoSuchProcess if the root is gone."""
    import psutil

    if not process.is_running():
        raise psutil.NoSuchProcess(process.pid)
    totals = {"fds": 0, "rss_bytes": 0, "threads": 0, "tcp_connections": 0, "processes": 0}
    read = []
    for pid in _tree(process.pid) if members is None else members:
        try:
            rss_bytes, threads = _stat(pid)
            fds, tcp = _fds(pid, tcp_inodes)
        except (OSError, ValueError, IndexError) as err:
            if pid == process.pid:
                raise psutil.NoSuchProcess(pid) from err  # the root is gone: the caller looks it up again
            continue
        read.append(pid)
        totals["fds"] += fds
        totals["rss_bytes"] += rss_bytes
        totals["threads"] += threads
        totals["tcp_connections"] += tcp
        totals["processes"] += 1
    return totals, read


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


class ResourceSampler:
    """Samples the workload process and the components ``lookup`` finds, from ``start`` until ``stop``.

    ``lookup(component) -> pid`` raises (anything) when the component is not running. ``cpu_s`` is the
    CPU time the sampling thread spent, for measuring what sampling costs a run.
    """

    def __init__(self, history: History, components: tuple[str, ...], lookup: Callable[[str], int],
                 interval_s: float = INTERVAL_S) -> None:
        self.history, self.components, self.lookup, self.interval_s = history, components, lookup, interval_s
        self.cpu_s = 0.0
        self.samples = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: dict[str, Any] = {}
        self._looked_up: dict[str, float] = {}
        self._trees: dict[str, tuple[float, list[int]]] = {}

    def start(self) -> "ResourceSampler":
        import psutil

        self._processes[WORKLOAD] = psutil.Process(os.getpid())
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops sampling; bounded (one sample's time at most)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
            self.history.add("sampler", FAIL if self.errors else OK, samples=self.samples,
                             cpu_s=round(self.cpu_s, 6), interval_s=self.interval_s, errors=self.errors[:5])

    def at_phase_end(self, phase: str) -> None:
        """At the end of the baseline and of the recovery, one sample now, in the caller's thread, before
        the phase's end is recorded: the growth check compares those two ends, and a phase shorter than
        ``interval_s`` might otherwise hold no sample at all (~5 ms, twice a run)."""
        if self._thread is not None and phase in CHECKED_PHASES:
            self.sample()

    def checks(self) -> list[tuple[str, Check]]:
        """The checks these samples feed, for every scenario."""
        return [("no fd or connection growth", no_resource_growth())]

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            try:
                self.sample()
            except Exception as err:  # a bug or an unreadable /proc: the run goes on, the error is recorded
                self.errors.append(f"{type(err).__name__}: {err}")
            self.cpu_s += time.thread_time() - started
            self._stop.wait(self.interval_s)

    def _process(self, name: str) -> Any | None:
        import psutil

        process = self._processes.get(name)
        if process is not None:  # if it is gone, sample_tree says so and it is looked up again
            return process
        now = time.monotonic()
        if now - self._looked_up.get(name, -RELOOKUP_S) < RELOOKUP_S:
            return None
        self._looked_up[name] = now
        try:
            process = psutil.Process(self.lookup(name))
        except Exception:  # not running (a fault killed it), or no host pid to be had
            self._processes.pop(name, None)
            return None
        self._processes[name] = process
        return process

    def sample(self) -> None:
        with self._lock:  # the thread, and at_phase_end from the event loop's
            self._sample()

    def _sample(self) -> None:
        import psutil

        self.samples += 1
        here = _netns(os.getpid())
        tables: dict[str, set[int]] = {}
        for name in (WORKLOAD, *self.components):
            process = self._process(name)
            if process is None:
                continue
            netns = _netns(process.pid)
            if netns not in tables:
                try:
                    tables[netns] = _tcp_inodes_here() if netns == here else _tcp_inodes_of(process.pid)
                except OSError:  # no sock_diag (a restricted kernel): the /proc tables, slower
                    tables[netns] = _tcp_inodes_of(process.pid)
            # the workload alone: a component a fault restarts from this process becomes its child. A
            # component's tree is looked up again at most once a second (its pool's backends come and go)
            scanned_at, members = self._trees.get(name, (-RELOOKUP_S, None))
            now = time.monotonic()
            if name == WORKLOAD:
                members = [process.pid]
            elif now - scanned_at >= RELOOKUP_S or not members or members[0] != process.pid:
                members, scanned_at = None, now
            try:
                values, read = sample_tree(process, tables[netns], members)
            except psutil.Error:
                self._processes.pop(name, None)
                self._trees.pop(name, None)
                continue
            self._trees[name] = (scanned_at, read)
            self.history.add("resource", OK, None, process=name, pid=process.pid, **values)


def for_backend(history: History, stack: Any, interval_s: float = INTERVAL_S) -> ResourceSampler:
    """A sampler of the workload and every component of ``stack`` (a lab.stack Backend)."""
    from ..services import COMPONENTS

    return ResourceSampler(history, COMPONENTS, lambda name: stack.main_process(name).pid, interval_s)


class _Off:
    cpu_s = 0.0
    samples = 0

    def stop(self) -> None:
        pass

    def at_phase_end(self, phase: str) -> None:
        pass

    def checks(self) -> list[tuple[str, Check]]:
        return []  # nothing sampled: no check that could only say "unknown"


def sampler_for(settings: Any, history: History, env: Any = None) -> Any:
    """A started sampler of the stack ``settings`` name, every LAB_RESOURCE_SAMPLE_MS milliseconds (default
    500; 0 turns sampling off, for measuring what it costs). A bad value is a ConfigError."""
    from ..errors import ConfigError
    from ..stack import backend

    raw = (os.environ if env is None else env).get("LAB_RESOURCE_SAMPLE_MS", "")
    if raw == "":
        interval_s = INTERVAL_S
    elif raw.isdigit():
        interval_s = int(raw) / 1000
    else:
        raise ConfigError(f"LAB_RESOURCE_SAMPLE_MS={raw!r}: expected a whole number of milliseconds (0: off)")
    if interval_s == 0:
        return _Off()
    return for_backend(history, backend.recorded(settings), interval_s).start()


def _level(samples: list[Any], field: str) -> float:
    return statistics.median(float(e.get(field)) for e in samples)


def no_resource_growth(process: str = WORKLOAD, window_s: float = 1.0, fd_slack: int = 10,
                       tcp_slack: int = 4) -> Check:
    """The ``process``'s open fds and TCP connections at the end of the recovery are no more than at the end
    of the baseline plus a slack (pools and clients reconnect to their sizes; a leak keeps what it took).

    Each level is the median of the samples in the last ``window_s`` of the phase (never before the phase
    began: a short recovery must not reach back into the fault), so one sample caught mid-reconnect does
    not decide. Unknown when either window has no sample.
    """
    def check(history: History) -> Verdict:
        levels = {}
        for phase in CHECKED_PHASES:
            window = history.phase(phase)
            if window is None:
                return Verdict("", UNKNOWN, f"no {phase} phase in the history")
            samples = [e for e in history.of("resource", process=process)
                       if max(window[0], window[1] - window_s) <= e.t <= window[1]]
            if not samples:
                return Verdict("", UNKNOWN, f"no resource sample of {process} in the last {window_s:.1f}s of "
                                            f"the {phase}")
            levels[phase] = (_level(samples, "fds"), _level(samples, "tcp_connections"))
        (fds_before, tcp_before), (fds_after, tcp_after) = levels["baseline"], levels["recovery"]
        evidence = (f"{process}: fds {fds_before:.0f} at the end of the baseline, {fds_after:.0f} at the end of "
                    f"the recovery (slack {fd_slack}); TCP connections {tcp_before:.0f} -> {tcp_after:.0f} "
                    f"(slack {tcp_slack})")
        grew = fds_after > fds_before + fd_slack or tcp_after > tcp_before + tcp_slack
        return Verdict("", FAIL if grew else PASS, evidence)

    return check


def growth(history: History) -> dict[str, float]:
    """Per sampled process: fds and TCP connections at the end of the recovery minus the end of the baseline,
    and the peak RSS (for the run store; absent where there is no sample)."""
    metrics: dict[str, float] = {}
    names = sorted({str(e.get("process")) for e in history.of("resource")})
    for name in names:
        samples = list(history.of("resource", process=name))
        metrics[f"resource.{name}.peak_rss_bytes"] = float(max(e.get("rss_bytes") for e in samples))
        metrics[f"resource.{name}.peak_fds"] = float(max(e.get("fds") for e in samples))
        baseline, recovery = history.phase("baseline"), history.phase("recovery")
        if baseline is None or recovery is None:
            continue
        before = [e for e in samples if max(baseline[0], baseline[1] - 1.0) <= e.t <= baseline[1]]
        after = [e for e in samples if max(recovery[0], recovery[1] - 1.0) <= e.t <= recovery[1]]
        if before and after:
            metrics[f"resource.{name}.fd_growth"] = _level(after, "fds") - _level(before, "fds")
            metrics[f"resource.{name}.tcp_growth"] = (_level(after, "tcp_connections")
                                                      - _level(before, "tcp_connections"))
    return metrics
