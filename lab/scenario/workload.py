"""The workload: every lane of the target called through every phase, and the cancellation storm.

Each call is one task; a lane has at most ``in_flight`` calls at once and starts one every
``interval_s``. Every call becomes one ``op`` event in the history (ok / fail / unknown, its latency,
error class and the lane's breaker state when it started); a call still running DRAIN_S after the
workload stops is cancelled and recorded as ``Hung``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Sequence

from .history import FAIL, OK, UNKNOWN, History
from .target import Lane

DRAIN_S = 3.0


class CancellationStorm:
    """Cancels a fraction (``rate``) of the calls mid-flight, at a random point, while it rages; seeded, so
    a run's storm is reproducible. The runner lets it rage during the fault phase only."""

    def __init__(self, rate: float, seed: int = 7) -> None:
        self.rate = rate
        self.raging = False
        self._rng = random.Random(seed)

    def strikes(self) -> bool:
        return self.raging and self.rate > 0 and self._rng.random() < self.rate

    def delay_s(self, interval_s: float) -> float:
        return self._rng.uniform(0, interval_s * 2)


class Workload:
    def __init__(self, lanes: Sequence[Lane], history: History, interval_s: float, in_flight: int,
                 storm: CancellationStorm | None = None) -> None:
        self.lanes, self.history, self.interval_s, self.in_flight = list(lanes), history, interval_s, in_flight
        self.storm = storm
        self.tasks: dict[asyncio.Task[None], tuple[Lane, float]] = {}
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    def _forget_task(self, task: "asyncio.Task[None]") -> None:
        self.tasks.pop(task, None)

    def start(self) -> None:
        # a self-driven lane (an HTTP target's: Locust makes its calls) is only watched, not driven
        self._loops = [asyncio.ensure_future(self._drive(lane)) for lane in self.lanes
                       if not getattr(lane, "self_driven", False)]

    async def _drive(self, lane: Lane) -> None:
        sequence = 0
        active: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            if len(active) < self.in_flight:
                sequence += 1
                started = self.history.now()
                task = asyncio.ensure_future(self._call(lane, sequence, started))
                self.tasks[task] = (lane, started)
                active.add(task)
                task.add_done_callback(self._forget_task)
                task.add_done_callback(active.discard)
                if self.storm is not None and self.storm.strikes():
                    asyncio.get_running_loop().call_later(self.storm.delay_s(self.interval_s), task.cancel)
            await asyncio.sleep(self.interval_s)

    def _record(self, lane: Lane, status: str, started: float, state: str, **details: object) -> None:
        ended = self.history.now()
        self.history.add("op", status, t=ended, lane=lane.name, started=started, ended=ended,
                         latency_s=ended - started, breaker_state=state, **details)

    async def _call(self, lane: Lane, sequence: int, started: float) -> None:
        state = lane.state()
        try:
            await lane.op(sequence)
        except asyncio.CancelledError:
            self._record(lane, UNKNOWN, started, state, error_class="Cancelled")
            raise
        except Exception as err:
            self._record(lane, FAIL, started, state, error_class=getattr(err, "error_class", type(err).__name__),
                         error=str(err)[:200])
            return
        self._record(lane, OK, started, state)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        pending = list(self.tasks)
        if pending:
            _, still = await asyncio.wait(pending, timeout=DRAIN_S)
            for task in still:  # never returned: the call hung
                lane, started = self.tasks.get(task, (None, 0.0))
                task.cancel()
                if lane is not None:
                    now = self.history.now()
                    self.history.add("op", UNKNOWN, t=now, lane=lane.name, started=started, ended=now,
                                     latency_s=now - started, error_class="Hung")
            await asyncio.gather(*still, return_exceptions=True)
