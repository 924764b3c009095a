"""Prometheus exposition with Toxiproxy's metric names and labels."""

from __future__ import annotations

import gc
import os
import resource
import sys

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = ("direction", "listener", "proxy", "upstream")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ByteCounters:
    """received/sent byte totals per (direction, listener, proxy, upstream).

    A series outlives the proxy it counted, as a Prometheus counter vector does.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str, str], list[int]] = {}

    def counters(self, direction: str, listener: str, proxy: str, upstream: str) -> list[int]:
        """The [received, sent] pair to add to for these labels."""
        return self._series.setdefault((direction, listener, proxy, upstream), [0, 0])

    def render(self) -> list[str]:
        lines: list[str] = []
        for index, metric in ((0, "toxiproxy_proxy_received_bytes_total"), (1, "toxiproxy_proxy_sent_bytes_total")):
            lines.append(f"# HELP {metric} ")
            lines.append(f"# TYPE {metric} counter")
            for labels in sorted(self._series):
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(_LABELS, labels, strict=True))
                lines.append(f"{metric}{{{text}}} {self._series[labels][index]}")
        return lines


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def runtime_lines(started_at: float) -> list[str]:
    """Process and interpreter metrics: this server's answer to Go's runtime metrics."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft_fds, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lines = [
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {usage.ru_utime + usage.ru_stime:.6f}",
        "# HELP process_max_fds Maximum number of open file descriptors.",
        "# TYPE process_max_fds gauge",
        f"process_max_fds {soft_fds}",
        "# HELP process_open_fds Number of open file descriptors.",
        "# TYPE process_open_fds gauge",
        f"process_open_fds {_open_fds()}",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {_rss_bytes()}",
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {started_at:.3f}",
        "# HELP python_gc_collections_total Number of times this generation was collected.",
        "# TYPE python_gc_collections_total counter",
    ]
    for generation, stats in enumerate(gc.get_stats()):
        lines.append(f'python_gc_collections_total{{generation="{generation}"}} {stats["collections"]}')
    lines += [
        "# HELP python_gc_frozen_objects Objects moved out of every collection by gc.freeze (start-up's heap).",
        "# TYPE python_gc_frozen_objects gauge",
        f"python_gc_frozen_objects {gc.get_freeze_count()}",
    ]
    version = ".".join(str(part) for part in sys.version_info[:3])
    lines += [
        "# HELP python_info Python platform information.",
        "# TYPE python_info gauge",
        f'python_info{{implementation="{sys.implementation.name}",version="{version}"}} 1',
    ]
    return lines


def render(byte_counters: ByteCounters | None, started_at: float | None) -> bytes:
    lines = [
        "# HELP promhttp_metric_handler_errors_total Total number of internal errors encountered "
        "by the promhttp metric handler.",
        "# TYPE promhttp_metric_handler_errors_total counter",
        'promhttp_metric_handler_errors_total{cause="encoding"} 0',
        'promhttp_metric_handler_errors_total{cause="gathering"} 0',
    ]
    if started_at is not None:
        lines += runtime_lines(started_at)
    if byte_counters is not None:
        lines += byte_counters.render()
    return ("\n".join(lines) + "\n").encode("utf-8")
