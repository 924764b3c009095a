"""Network faults through the Toxiproxy API: toxics per direction, partitions, flapping."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Protocol

from ..proxy.client import NotFound, ToxiproxyClient
from .base import Fault, FaultError, non_negative, positive
from .ledger import FaultLedger

__all__ = ["DIRECTIONS", "Flapping", "Partition", "ProxyFault", "Toxic", "ToxicFault", "ToxicSpec", "bandwidth",
           "blackhole", "disable_proxy", "enable_proxy", "latency", "limit_data", "reset_peer", "slicer", "slow_close"]

DIRECTIONS = ("upstream", "downstream")


@dataclasses.dataclass(frozen=True)
class ToxicSpec:
    """A toxic with units in its field names; ``attributes()`` gives Toxiproxy's attribute names."""

    type: str
    direction: str = "downstream"
    toxicity: float = 1.0
    latency_ms: int = 0
    jitter_ms: int = 0
    rate_kbps: int = 0
    timeout_ms: int = 0
    delay_ms: int = 0
    average_size_bytes: int = 0
    size_variation_bytes: int = 0
    slice_delay_us: int = 0
    bytes_limit: int = 0

    def __post_init__(self) -> None:
        if self.type not in ("latency", "bandwidth", "timeout", "reset_peer", "slow_close", "slicer", "limit_data"):
            raise FaultError(f"unknown toxic type {self.type!r}")
        if self.direction not in DIRECTIONS:
            raise FaultError(f"direction must be upstream or downstream, got {self.direction!r}")
        if not 0 <= self.toxicity <= 1:
            raise FaultError(f"toxicity must be in [0, 1], got {self.toxicity!r}")
        for name in ("latency_ms", "jitter_ms", "rate_kbps", "timeout_ms", "delay_ms", "average_size_bytes",
                     "size_variation_bytes", "slice_delay_us", "bytes_limit"):
            non_negative(name, getattr(self, name))

    def attributes(self) -> dict[str, Any]:
        return {
            "latency": {"latency": self.latency_ms, "jitter": self.jitter_ms},
            "bandwidth": {"rate": self.rate_kbps},
            "timeout": {"timeout": self.timeout_ms},
            "reset_peer": {"timeout": self.timeout_ms},
            "slow_close": {"delay": self.delay_ms},
            "slicer": {"average_size": self.average_size_bytes, "size_variation": self.size_variation_bytes,
                       "delay": self.slice_delay_us},
            "limit_data": {"bytes": self.bytes_limit},
        }[self.type]


def latency(latency_ms: int, jitter_ms: int = 0, direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("latency", direction, latency_ms=latency_ms, jitter_ms=jitter_ms)


def bandwidth(rate_kbps: int, direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("bandwidth", direction, rate_kbps=rate_kbps)


def blackhole(direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("timeout", direction, timeout_ms=0)


def reset_peer(timeout_ms: int = 0, direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("reset_peer", direction, timeout_ms=timeout_ms)


def slow_close(delay_ms: int, direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("slow_close", direction, delay_ms=delay_ms)


def slicer(average_size_bytes: int, size_variation_bytes: int, slice_delay_us: int,
           direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("slicer", direction, average_size_bytes=average_size_bytes,
                     size_variation_bytes=size_variation_bytes, slice_delay_us=slice_delay_us)


def limit_data(bytes_limit: int, direction: str = "downstream") -> ToxicSpec:
    return ToxicSpec("limit_data", direction, bytes_limit=bytes_limit)


async def enable_proxy(api_url: str, proxy: str) -> None:
    """The proxy accepts connections again: the heal of every fault that disables a proxy (the one place)."""
    await ToxiproxyClient(api_url).enable(proxy)


async def disable_proxy(api_url: str, proxy: str) -> None:
    """New connections refused, open ones closed."""
    await ToxiproxyClient(api_url).disable(proxy)


class Toxic(Protocol):
    """What ToxicFault needs of a toxic: a ToxicSpec, or one of lab.proxy's protocol toxics (lab/faults/protocol.py)."""

    @property
    def type(self) -> str: ...

    @property
    def direction(self) -> str: ...

    @property
    def toxicity(self) -> float: ...

    def attributes(self) -> dict[str, Any]: ...


class ToxicFault(Fault):
    """One toxic on one proxy (one direction); healed by removing the toxic by name."""

    kind = "toxic"

    def __init__(self, ledger: FaultLedger, api_url: str, proxy: str, spec: Toxic) -> None:
        super().__init__(ledger)
        self.api_url, self.proxy, self.spec = api_url, proxy, spec
        self.toxic_name = f"lab-{spec.type}-{spec.direction}"

    def key(self) -> str:
        return f"toxic:{self.proxy}:{self.toxic_name}"

    def heal_data(self) -> dict[str, Any]:
        return {"api": self.api_url, "proxy": self.proxy, "toxic": self.toxic_name, "type": self.spec.type,
                "direction": self.spec.direction, "attributes": self.spec.attributes()}

    async def _inject(self) -> None:
        await ToxiproxyClient(self.api_url).add_toxic(self.proxy, self.spec.type, name=self.toxic_name,
                                                      stream=self.spec.direction, toxicity=self.spec.toxicity,
                                                      attributes=self.spec.attributes())

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        try:
            await ToxiproxyClient(data["api"]).remove_toxic(data["proxy"], data["toxic"])
        except NotFound:
            pass  # never added, or already removed


class ProxyFault(Fault):
    """A fault that takes one proxy down; healed by enabling it again."""

    def __init__(self, ledger: FaultLedger, api_url: str, proxy: str) -> None:
        super().__init__(ledger)
        self.api_url, self.proxy = api_url, proxy

    def key(self) -> str:
        return f"{self.kind}:{self.proxy}"

    def heal_data(self) -> dict[str, Any]:
        return {"api": self.api_url, "proxy": self.proxy}

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        await enable_proxy(data["api"], data["proxy"])


class Partition(ProxyFault):
    """The proxy disabled: new connections refused, open ones closed."""

    kind = "partition"

    async def _inject(self) -> None:
        await disable_proxy(self.api_url, self.proxy)


class Flapping(ProxyFault):
    """The proxy goes down and up again: ``down_s`` disabled, ``up_s`` enabled, until healed."""

    kind = "flapping"

    def __init__(self, ledger: FaultLedger, api_url: str, proxy: str, down_s: float, up_s: float) -> None:
        positive("down_s", down_s)
        positive("up_s", up_s)
        super().__init__(ledger, api_url, proxy)
        self.down_s, self.up_s = down_s, up_s
        self._task: asyncio.Task[None] | None = None
        self.flips: list[tuple[float, bool]] = []

    async def _inject(self) -> None:
        self._task = asyncio.ensure_future(self._flap())

    async def _flap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await disable_proxy(self.api_url, self.proxy)
            self.flips.append((loop.time(), False))
            await asyncio.sleep(self.down_s)
            await enable_proxy(self.api_url, self.proxy)
            self.flips.append((loop.time(), True))
            await asyncio.sleep(self.up_s)

    async def heal(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await super().heal()
