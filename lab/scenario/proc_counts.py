"""Counting a process tree's open fds, RSS, threads and TCP connections from /proc, cheaply enough to do it
twice a second during every scenario (what ``resources.ResourceSampler`` does).

What makes it cheap (bench/recording_bench.py measures it):

* TCP sockets come from one sock_diag dump per sample over a netlink socket kept open (what ``ss`` does):
  /proc/net/tcp walks the kernel's whole established hash (~25 ms here even when empty). The dump asks
  only for the states a socket with a file can be in: TIME_WAIT sockets (thousands of them after a few
  scenarios) have no file and no inode, and can never be one of a process's fds.
* A process's fd table (how many fds, which of them are sockets) is read again only when the process has
  used CPU since it was last read: an fd can only be opened or closed by a thread of the process, and any
  thread that runs advances the process's CPU clock (read in one ``clock_gettime`` of its CPU-time clock,
  nanoseconds, every thread included). The clock is read *before* the table, so a change made while the
  table was read shows as a later clock. A process that did not run keeps its fds; which of its sockets are
  TCP connections is still decided by the fresh dump, so a connection the peer reset counts no more. The
  tables are kept per (pid, start time), so a reused pid is a new process. Postgres's idle auxiliaries and
  an idle pool's backends are most of a tree: reading their ~30 fds each (a ``readlink`` apiece) was the
  bulk of a sample.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import struct
import time

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x1, 0x300, 2, 3
TCP_TIME_WAIT, TCP_LISTEN_STATE = 6, 10
# a bit per TCP state (1..11): every state but LISTEN, and but TIME_WAIT (a socket with no file, inode 0)
WITH_A_FILE_NOT_LISTENING = 0xFFF & ~(1 << TCP_LISTEN_STATE) & ~(1 << TCP_TIME_WAIT)
INODE_OFFSET = 16 + 68  # nlmsghdr, then inet_diag_msg's idiag_inode
CPUCLOCK_SCHED = 2  # the kernel's per-process CPU-time clock id: ((~pid) << 3) | CPUCLOCK_SCHED


class TcpTable:
    """Inodes of this network namespace's TCP sockets in any state but LISTEN, by a sock_diag dump (~0.2 ms
    a family when there are few sockets: the kernel walks its whole established hash for each). One netlink
    socket, opened on first use, kept until ``close``; not for use by two threads at once. Raises OSError
    where there is no sock_diag (a restricted kernel).

    The IPv6 dump is skipped while the namespace holds no IPv6 TCP socket at all (``TCP6: inuse 0`` in
    /proc/net/sockstat6, kept open and re-read: ~3 us, where the dump costs as much as the IPv4 one): half
    the sampler's kernel time on a stack that listens and connects over IPv4 only. A socket made between
    that read and the dump is seen by the next sample, as any socket made after a dump is."""

    def __init__(self) -> None:
        self._link: socket.socket | None = None
        self._sockstat6: int | None = None  # fd on /proc/net/sockstat6 (this namespace's), -1: none to be had

    def inodes(self) -> set[int]:
        if self._link is None:
            self._link = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
            self._link.settimeout(1.0)
        families = (socket.AF_INET, socket.AF_INET6) if self._ipv6_in_use() else (socket.AF_INET,)
        try:
            return _dump(self._link, families)
        except OSError:
            self.close()  # a half-read dump leaves answers queued: the next call starts on a new socket
            raise

    def _ipv6_in_use(self) -> bool:
        """False only when sockstat6 says no IPv6 TCP socket exists, or there is no IPv6 (no sockstat6)."""
        if self._sockstat6 is None:
            try:
                self._sockstat6 = os.open("/proc/net/sockstat6", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # a kernel without IPv6: no IPv6 socket to dump
                self._sockstat6 = -1
            except OSError:
                return True
        if self._sockstat6 < 0:
            return False
        try:
            text = os.pread(self._sockstat6, 512, 0)
        except OSError:
            return True
        for line in text.splitlines():
            if line.startswith(b"TCP6:"):
                fields = line.split()
                return not (len(fields) >= 3 and fields[1] == b"inuse" and fields[2] == b"0")
        return True

    def own_fds(self) -> int:
        """The fds this table holds open in this process (its netlink socket, its sockstat6 file), not the
        workload's own."""
        return (self._link is not None) + (self._sockstat6 is not None and self._sockstat6 >= 0)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._sockstat6 is not None and self._sockstat6 >= 0:
            os.close(self._sockstat6)
        self._sockstat6 = None


def _dump(link: socket.socket, families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)) -> set[int]:
    inodes: set[int] = set()
    for family in families:
        request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, WITH_A_FILE_NOT_LISTENING)
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
    inodes.discard(0)
    return inodes


def tcp_inodes_here() -> set[int]:
    """One dump on a socket of its own (for a single count; a sampler keeps a ``TcpTable``)."""
    table = TcpTable()
    try:
        return table.inodes()
    finally:
        table.close()


def tcp_inodes_of(pid: int) -> set[int]:
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


def tree(pid: int) -> list[int]:
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


def stat(pid: int) -> tuple[int, int, int]:
    """(RSS in bytes, threads, start time in clock ticks) of one process, from one read of /proc/<pid>/stat
    (psutil's memory_info and num_threads read two files through several layers: three times the cost)."""
    with open(f"/proc/{pid}/stat", "rb") as stat_file:
        data = stat_file.read()
    fields = data[data.rindex(b")") + 2:].split()  # from field 3 (state) on: the name may hold spaces
    return int(fields[21]) * PAGE_SIZE, int(fields[17]), int(fields[19])


class StatFiles:
    """RSS, threads and start time of the processes a sampler reads, for a few microseconds each.

    /proc/<pid>/stat costs 30-200 us a read here (the kernel sums every thread's CPU times and faults for
    it); /proc/<pid>/statm 2 us. So per process: its start time from one read of ``stat`` when first seen,
    then per sample RSS from its ``statm``, kept open and read again from its start (a procfs file answers
    each read at offset 0 afresh: no open and close per sample), and threads from the link count of its
    /proc/<pid>/task (2 + one per thread; one stat call). A kept file stays bound to its process: once that
    exits, reading it fails (ESRCH), so a pid the kernel reused is never read through it. The files are
    this process's fds: ``held`` says how many, for the workload's count. ``prune`` closes those not read
    since the last prune."""

    def __init__(self) -> None:
        self._files: dict[int, tuple[int, int]] = {}  # pid -> (fd on its statm, start time in ticks)
        self._seen: set[int] = set()

    def held(self) -> int:
        return len(self._files)

    def read(self, pid: int) -> tuple[int, int, int]:
        """As ``stat(pid)``. Raises ProcessLookupError or FileNotFoundError when the process is gone,
        another OSError (EMFILE) when there is no fd to open its file with."""
        self._seen.add(pid)
        kept = self._files.get(pid)
        if kept is None:
            fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
            try:
                started = stat(pid)[2]  # after the open: the file is this process's, or the read fails
            except BaseException:
                os.close(fd)
                raise
            kept = self._files[pid] = (fd, started)
        try:
            rss_pages = int(os.pread(kept[0], 256, 0).split()[1])
            threads = os.stat(f"/proc/{pid}/task").st_nlink - 2
        except (OSError, ValueError, IndexError):
            self._close(pid)
            raise
        return rss_pages * PAGE_SIZE, threads, kept[1]

    def prune(self) -> None:
        for pid in [pid for pid in self._files if pid not in self._seen]:
            self._close(pid)
        self._seen = set()

    def close(self) -> None:
        for pid in list(self._files):
            self._close(pid)

    def _close(self, pid: int) -> None:
        kept = self._files.pop(pid, None)
        if kept is not None:
            os.close(kept[0])


def cpu_ns(pid: int) -> int | None:
    """CPU time used by every thread of ``pid`` so far, in ns (None where the kernel will not say)."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | CPUCLOCK_SCHED)
    except (OSError, OverflowError):
        return None


@dataclasses.dataclass(frozen=True)
class FdTable:
    cpu_ns: int | None  # the process's CPU clock read just before the table was; None: always read again
    fds: int
    sockets: tuple[int, ...]  # inodes of the sockets among them (TCP or not: the dump decides per sample)


def fd_table(pid: int) -> FdTable:
    """Reads ``pid``'s fd table now (a readlink per fd, relative to the open fd directory: no path walk per
    fd). Raises OSError when the process is gone. In this process's own table the fds open on that
    directory while it is listed are the reader's, not the process's, and are not counted."""
    clock = cpu_ns(pid)
    count, sockets = 0, []
    path = f"/proc/{pid}/fd"
    directory = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    own = pid == os.getpid()
    try:
        for name in os.listdir(directory):
            try:
                link = os.readlink(name, dir_fd=directory)
            except OSError:  # closed since the listing (as is the listing's own fd, in this process): not open
                continue
            if own and link == path:
                continue
            count += 1
            if link.startswith("socket:["):
                sockets.append(int(link[8:-1]))
    finally:
        os.close(directory)
    return FdTable(clock, count, tuple(sockets))


class FdTables:
    """The fd tables of the processes a sampler reads, each read again only when its process ran since.

    ``read(pid, started)`` is what ``fd_table(pid)`` would return now. ``prune`` forgets the processes not
    read since the last prune (a pool's backends come and go)."""

    def __init__(self) -> None:
        self._tables: dict[tuple[int, int], FdTable] = {}
        self._seen: set[tuple[int, int]] = set()
        self.reads = self.reuses = 0

    def read(self, pid: int, started: int) -> FdTable:
        key = (pid, started)
        self._seen.add(key)
        known = self._tables.get(key)
        if known is not None and known.cpu_ns is not None and cpu_ns(pid) == known.cpu_ns:
            self.reuses += 1
            return known
        self.reads += 1
        table = self._tables[key] = fd_table(pid)
        return table

    def prune(self) -> None:
        self._tables = {key: table for key, table in self._tables.items() if key in self._seen}
        self._seen = set()


class ProcessGone(LookupError):
    """The process is no longer there (or its pid is another process's now)."""


@dataclasses.dataclass(frozen=True)
class Root:
    """A process to sample, as (pid, start time in clock ticks): a pid the kernel reused is another Root.
    (What psutil.Process.is_running checks, from the same /proc/<pid>/stat, without reading it twice.)"""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> "Root":
        try:
            return cls(pid, stat(pid)[2])
        except (OSError, ValueError, IndexError) as err:
            raise ProcessGone(f"no process {pid}") from err


def sample_tree(root: Root, tcp_inodes: set[int], members: list[int] | None = None,
                tables: FdTables | None = None, stats: StatFiles | None = None) -> tuple[dict[str, int], list[int]]:
    """fds, RSS (summed over the tree, so shared pages count more than once), threads and TCP connections
    (sockets whose inode is in ``tcp_inodes``) of ``root`` and its descendants, and the pids that were read.

    ``members``: the pids to read (a tree found by an earlier sample, or just the root); None finds the
    tree now. ``tables``: fd tables kept from earlier samples (None reads every one now); ``stats``: stat
    files kept open (None opens each). A member that is
    gone is left out. Raises ProcessGone if the root is gone (or its pid is another process now), and
    OSError when /proc cannot be read for another reason (no fd left to read it with: EMFILE)."""
    totals = {"fds": 0, "rss_bytes": 0, "threads": 0, "tcp_connections": 0, "processes": 0}
    read = []
    for pid in tree(root.pid) if members is None else members:
        try:
            rss_bytes, threads, started = stat(pid) if stats is None else stats.read(pid)
            if pid == root.pid and started != root.started:
                raise ProcessLookupError(f"pid {pid} is another process now")
            table = fd_table(pid) if tables is None else tables.read(pid, started)
        except (OSError, ValueError, IndexError) as err:
            if isinstance(err, OSError) and err.errno in (errno.EMFILE, errno.ENFILE):
                # the fd_exhaustion fault leaves this process no fd to open /proc with: the process is
                # there, this sample of it cannot be taken (the caller notes it)
                raise
            if pid == root.pid:
                raise ProcessGone(f"process {pid} is gone") from err  # the caller looks it up again
            continue
        read.append(pid)
        totals["fds"] += table.fds
        totals["rss_bytes"] += rss_bytes
        totals["threads"] += threads
        totals["tcp_connections"] += sum(1 for inode in table.sockets if inode in tcp_inodes)
        totals["processes"] += 1
    return totals, read


def netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""
