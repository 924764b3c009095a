"""JSON-lines structured logs and Prometheus-style metrics shared by the clients."""

from __future__ import annotations

import bisect
import json
import math
import logging
from typing import Any

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics) with a sum and a count."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def observe_since(self, now: float, start_times: list[float]) -> None:
        """Observe ``now - t`` for each of ``start_times``: one bisect per bucket, not per value.

        For a batch of acknowledgements. The same counts as observing each value
        (up to rounding at a bucket's exact bound).
        """
        if not start_times:
            return
        starts = sorted(start_times)
        total = len(starts)
        below = 0  # values counted in lower buckets so far
        for index, bound in enumerate(self.buckets):
            at_most = total - bisect.bisect_left(starts, now - bound)  # values <= bound
            self.counts[index] += at_most - below
            below = at_most
        self.counts[-1] += total - below
        self.sum += total * now - math.fsum(starts)
        self.count += total

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (inf if beyond the last bucket)."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return self.buckets[index] if index < len(self.buckets) else float("inf")
        return float("inf")

    def prometheus(self, name: str, labels: str) -> list[str]:
        lines, cumulative = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
        lines += [f"{name}_sum{{{labels}}} {self.sum}", f"{name}_count{{{labels}}} {self.count}"]
        return lines


def current_trace_ids() -> dict[str, str]:
    """The current OpenTelemetry span's ``trace_id`` and ``span_id`` as hex, as in ``traceparent``
    ({} with no valid current span, or without the OpenTelemetry API)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra={"fields": {...}}``.

    A line logged inside an OpenTelemetry span carries that span's ``trace_id`` and ``span_id`` (unless
    its fields name others, as a send's outcome does: it is logged after its caller moved on)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(current_trace_ids())
        entry.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
