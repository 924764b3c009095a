"""Every fault kind as an async context manager, for a test: ``async with chaos.partition("postgres"): ...``.

Each is the lab's own Fault class (ledger entry written before anything is touched, heal shielded and
bounded, on success, error and cancellation); with a ``Recorder`` the fault and heal phases are marked in
the test's history, so the scenario checks can judge it. ``heal_all`` (the ``chaos`` fixture's
teardown) heals whatever the ledger still holds, even when the test failed or was interrupted.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..faults import Fault, FaultLedger, heal_ledger
from ..faults.fd import ServerFdLimit
from ..faults.memory import MemoryLimit
from ..faults.network import Partition, ToxicFault, bandwidth, blackhole, latency, reset_peer
from ..faults.process import KillRestart, Pause
from .recorder import Recorder


class _Marked:
    """A fault entered and left as the test's fault phase, healed on the way out whatever happened."""

    def __init__(self, fault: Fault, recorder: Recorder | None) -> None:
        self.fault, self.recorder = fault, recorder

    async def __aenter__(self) -> Fault:
        if self.recorder is not None:
            self.recorder.phase("fault", "start")
        await self.fault.__aenter__()
        if self.recorder is not None:
            self.recorder.history.add("fault", name=self.fault.key(), edge="inject", fault=self.fault.describe())
        return self.fault

    async def __aexit__(self, *exc: Any) -> None:
        if self.recorder is not None:
            self.recorder.phase("fault", "end")
            self.recorder.phase("heal", "start")
        try:
            await self.fault.__aexit__(*exc)
        finally:
            if self.recorder is not None:
                self.recorder.history.add("fault", name=self.fault.key(), edge="heal", report=self.fault.report())
                self.recorder.phase("heal", "end")


class Chaos:
    """Fault factories over one stack. Proxies are named as the stack names them ("postgres", "kafka"); so are
    components (for pause, kill, limits)."""

    def __init__(self, settings: Settings, recorder: Recorder | None = None) -> None:
        self.settings, self.recorder = settings, recorder
        self.ledger = FaultLedger(settings.state_path / "ledger")

    def _marked(self, fault: Fault) -> _Marked:
        return _Marked(fault, self.recorder)

    def partition(self, proxy: str) -> _Marked:
        """Connections refused and the open ones closed (the proxy disabled)."""
        return self._marked(Partition(self.ledger, self.settings.proxy_url, proxy))

    def latency(self, proxy: str, latency_ms: int, jitter_ms: int = 0, direction: str = "downstream") -> _Marked:
        return self._marked(ToxicFault(self.ledger, self.settings.proxy_url, proxy,
                                       latency(latency_ms, jitter_ms, direction)))

    def blackhole(self, proxy: str, direction: str = "downstream") -> _Marked:
        """Bytes accepted and never delivered: calls hang unless they time out."""
        return self._marked(ToxicFault(self.ledger, self.settings.proxy_url, proxy, blackhole(direction)))

    def reset_peer(self, proxy: str, timeout_ms: int = 0, direction: str = "downstream") -> _Marked:
        return self._marked(ToxicFault(self.ledger, self.settings.proxy_url, proxy, reset_peer(timeout_ms, direction)))

    def bandwidth(self, proxy: str, rate_kbps: int, direction: str = "downstream") -> _Marked:
        return self._marked(ToxicFault(self.ledger, self.settings.proxy_url, proxy, bandwidth(rate_kbps, direction)))

    def pause(self, component: str) -> _Marked:
        """The server process stopped (SIGSTOP / docker pause) until the heal."""
        return self._marked(Pause(self.ledger, self.settings, component))

    def kill_restart(self, component: str) -> _Marked:
        """The server SIGKILLed on entry and started again (waiting for health) at the heal."""
        return self._marked(KillRestart(self.ledger, self.settings, component))

    def server_fd_limit(self, component: str, nofile: int) -> _Marked:
        return self._marked(ServerFdLimit(self.ledger, self.settings, component, nofile))

    def memory_limit(self, component: str, limit_bytes: int) -> _Marked:
        return self._marked(MemoryLimit(self.ledger, self.settings, component, limit_bytes))

    async def heal_all(self) -> None:
        """Heal every fault the ledger still holds (a test that failed or was interrupted mid-fault)."""
        await heal_ledger(self.ledger)
