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

When the sampler stops it adds one ``sampler`` event: how many samples it took, its thread's CPU time and
the CPU time of the phase-end samples (taken in the run's thread), for measuring what sampling costs
(bench/recording_bench.py).

``no_resource_growth`` is the check built on them: a leak shows as fds or connections that keep
growing across the fault and are still there once the scenario recovered.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any, Callable

from .checks import PASS, Check, Verdict
from .history import FAIL, OK, UNKNOWN, History
from .proc_counts import FdTables, ProcessGone, Root, StatFiles, TcpTable, netns, sample_tree, tcp_inodes_of

INTERVAL_S = 0.5  # twice a second: at 4/s a Postgres tree of ~20 processes costs the sampler ~1.5% of a core
RELOOKUP_S = 1.0
WORKLOAD = "workload"
CHECKED_PHASES = ("baseline", "recovery")  # the growth check compares their ends


class ResourceSampler:
    """Samples the workload process and the components ``lookup`` finds, from ``start`` until ``stop``.

    ``lookup(component) -> pid`` raises (anything) when the component is not running. ``cpu_s`` is the
    CPU time the sampling thread spent, for measuring what sampling costs a run.
    """

    def __init__(self, history: History, components: tuple[str, ...], lookup: Callable[[str], int],
                 interval_s: float = INTERVAL_S) -> None:
        self.history, self.components, self.lookup, self.interval_s = history, components, lookup, interval_s
        self.cpu_s = 0.0  # the sampling thread's
        self.phase_end_cpu_s = 0.0  # the two phase-end samples', in the run's own thread
        self.samples = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: dict[str, Root] = {}
        self._looked_up: dict[str, float] = {}
        self._trees: dict[str, tuple[float, list[int]]] = {}
        self._netns: dict[int, str] = {}  # per sampled root pid (a process does not change namespaces)
        self._tcp = TcpTable()
        self.fd_tables = FdTables()
        self.stat_files = StatFiles()

    def start(self) -> "ResourceSampler":
        self._processes[WORKLOAD] = Root.of(os.getpid())
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops sampling; bounded (one sample's time at most)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
            with self._lock:
                self._tcp.close()
                self.stat_files.close()
            self.history.add("sampler", FAIL if self.errors else OK, samples=self.samples,
                             cpu_s=round(self.cpu_s, 6), phase_end_cpu_s=round(self.phase_end_cpu_s, 6),
                             interval_s=self.interval_s, errors=self.errors[:5])

    def at_phase_end(self, phase: str) -> None:
        """At the end of the baseline and of the recovery, one sample now, in the caller's thread, before
        the phase's end is recorded: the growth check compares those two ends, and a phase shorter than
        ``interval_s`` might otherwise hold no sample at all (~5 ms, twice a run)."""
        if self._thread is not None and phase in CHECKED_PHASES:
            started = time.thread_time()
            self._sample_or_note()
            self.phase_end_cpu_s += time.thread_time() - started

    def checks(self) -> list[tuple[str, Check]]:
        """The checks these samples feed, for every scenario."""
        return [("no fd or connection growth", no_resource_growth())]

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            self._sample_or_note()
            self.cpu_s += time.thread_time() - started
            self._stop.wait(self.interval_s)

    def _process(self, name: str) -> Root | None:
        process = self._processes.get(name)
        if process is not None:  # if it is gone, sample_tree says so and it is looked up again
            return process
        now = time.monotonic()
        if now - self._looked_up.get(name, -RELOOKUP_S) < RELOOKUP_S:
            return None
        self._looked_up[name] = now
        try:
            process = Root.of(self.lookup(name))
        except Exception:  # not running (a fault killed it), or no host pid to be had
            self._processes.pop(name, None)
            return None
        self._processes[name] = process
        return process

    def _sample_or_note(self) -> None:
        try:
            self.sample()
        except Exception as err:  # a bug or an unreadable /proc: the run goes on, the error is recorded
            self.errors.append(f"{type(err).__name__}: {err}")

    def sample(self) -> None:
        with self._lock:  # the thread, and at_phase_end from the event loop's
            self._sample()

    def _sample(self) -> None:
        self.samples += 1
        here = self._netns_of(os.getpid())
        tables: dict[str, set[int]] = {}
        for name in (WORKLOAD, *self.components):
            process = self._process(name)
            if process is None:
                continue
            namespace = self._netns_of(process.pid)
            if namespace not in tables:
                try:
                    tables[namespace] = self._tcp.inodes() if namespace == here else tcp_inodes_of(process.pid)
                except OSError:  # no sock_diag (a restricted kernel): the /proc tables, slower
                    tables[namespace] = tcp_inodes_of(process.pid)
            # the workload alone: a component a fault restarts from this process becomes its child. A
            # component's tree is looked up again at most once a second (its pool's backends come and go)
            scanned_at, members = self._trees.get(name, (-RELOOKUP_S, None))
            now = time.monotonic()
            if name == WORKLOAD:
                members = [process.pid]
            elif now - scanned_at >= RELOOKUP_S or not members or members[0] != process.pid:
                members, scanned_at = None, now
            try:
                values, read = sample_tree(process, tables[namespace], members, self.fd_tables, self.stat_files)
                own_fds = self._tcp.own_fds() + self.stat_files.held()  # at the listing of this process's fds
            except ProcessGone:
                self._processes.pop(name, None)
                self._trees.pop(name, None)
                self._netns.pop(process.pid, None)
                continue
            self._trees[name] = (scanned_at, read)
            if name == WORKLOAD:  # the sampler's own netlink socket and stat files are not the workload's
                values["fds"] -= own_fds
            self.history.add("resource", OK, None, process=name, pid=process.pid, **values)
        self.fd_tables.prune()
        self.stat_files.prune()

    def _netns_of(self, pid: int) -> str:
        if pid not in self._netns:
            self._netns[pid] = netns(pid)
        return self._netns[pid]


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
    and the peak RSS (for the run store; absent where there is no sample). One pass over the history."""
    by_process: dict[str, list[Any]] = {}
    for event in history.events:
        if event.kind == "resource":
            by_process.setdefault(str(event.get("process")), []).append(event)
    baseline, recovery = history.phase("baseline"), history.phase("recovery")
    metrics: dict[str, float] = {}
    for name in sorted(by_process):
        samples = by_process[name]
        metrics[f"resource.{name}.peak_rss_bytes"] = float(max(e.get("rss_bytes") for e in samples))
        metrics[f"resource.{name}.peak_fds"] = float(max(e.get("fds") for e in samples))
        if baseline is None or recovery is None:
            continue
        before = [e for e in samples if max(baseline[0], baseline[1] - 1.0) <= e.t <= baseline[1]]
        after = [e for e in samples if max(recovery[0], recovery[1] - 1.0) <= e.t <= recovery[1]]
        if before and after:
            metrics[f"resource.{name}.fd_growth"] = _level(after, "fds") - _level(before, "fds")
            metrics[f"resource.{name}.tcp_growth"] = (_level(after, "tcp_connections")
                                                      - _level(before, "tcp_connections"))
    return metrics
