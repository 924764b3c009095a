"""A service's breaker state, read from its Prometheus ``/metrics`` (text exposition format).

``BreakerMetric`` says which sample is the breaker's state and what its values mean: by default a gauge
whose value is 0 (CLOSED), 1 (OPEN) or 2 (HALF_OPEN), optionally selected by labels. ``MetricsWatcher``
polls it every ``period_s`` and records each change as a ``breaker`` event of ``component`` (a change
that reverts within one period is missed: the resolution is stated, not hidden).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import urllib.parse
from typing import Mapping

from ..errors import UsageError
from .history import OK, History

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass(frozen=True)
class BreakerMetric:
    url: str  # http://host:port/metrics
    metric: str  # e.g. "circuit_breaker_state"
    component: str = "pg"  # whose breaker it is, for the checks
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)  # e.g. {"name": "orders-db"}
    states: Mapping[float, str] = dataclasses.field(
        default_factory=lambda: {0.0: "CLOSED", 1.0: "OPEN", 2.0: "HALF_OPEN"})
    period_s: float = 0.05
    timeout_s: float = 1.0


def parse_state(text: str, spec: BreakerMetric) -> str | None:
    """The state the first matching sample of ``text`` says, or None (no such sample, or an unmapped value)."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != spec.metric:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        if any(labels.get(k) != v for k, v in spec.labels.items()):
            continue
        try:
            return spec.states.get(float(match.group(4)))
        except ValueError:
            return None
    return None


async def fetch(url: str, timeout_s: float) -> str:
    """GET ``url`` over plain HTTP/1.0 on loopback (bounded); the body as text."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"metrics url {url!r}: only http://host:port/path is supported")
    async def get() -> str:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            writer.write(f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
            length = None
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await (reader.readexactly(length) if length is not None else reader.read())
        finally:
            writer.close()
        return body.decode(errors="replace")
    return await asyncio.wait_for(get(), timeout_s)


class MetricsWatcher:
    def __init__(self, spec: BreakerMetric, history: History) -> None:
        self.spec, self.history = spec, history
        self._state = "CLOSED"
        self._task: asyncio.Task[None] | None = None

    def state(self) -> str:
        return self._state

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                seen = parse_state(await fetch(self.spec.url, self.spec.timeout_s), self.spec)
            except (OSError, asyncio.TimeoutError):
                seen = None  # the service itself is unreachable: its breaker state is not known
            if seen is not None and seen != self._state:
                self.history.add("breaker", OK, None, component=self.spec.component, breaker=self.spec.metric,
                                 **{"from": self._state}, to=seen, reason=f"read from {self.spec.url} (polled "
                                                                           f"every {self.spec.period_s:g}s)")
                self._state = seen
            await asyncio.sleep(self.spec.period_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
