"""The Kafka lane on a ProducerPool, and the checks that judge a pool from the history.

``PoolLane`` is KafkaLane with the resilient producer replaced by a ``ProducerPool`` of
``POOL_CONFIG`` (a mutant may change the config or the pool class; the client mutants and the
profile's breaker apply to every member): the same envelope per call,
the same read-back and ledger probes (the pool's one ledger holds every member's deliveries), plus
every scaling decision recorded as a ``pool`` event and a final ``kafka.pool`` probe of the members'
health. The negative control stays KafkaLane's raw aiokafka producer.

The pool's members each have a breaker of their own, so the lane observes no single breaker: it
declares none (checks of a breaker's cycle are UNKNOWN here, never a pass).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..clients import DeliveryLedger, KafkaProducer, KafkaSettings, kafka
from ..clients.producer_pool import PoolConfig, PoolEvent, ProducerPool
from ..resilience import CircuitBreaker
from .checks import PASS, Check, Verdict, _window
from .evidence import calls_not_the_labs, covering_lanes
from .history import FAIL, OK, UNKNOWN, History
from .targets import KafkaLane, _breaker

#: Three members from the start (each black-holed connection is one third of the pool); a member with sends
#: outstanding and no acknowledgement for 0.5 s, while another gets them, is replaced: before aiokafka's own
#: request timeout (kafka_pool_wedged: 2 s) closes the connection and retries.
POOL_CONFIG = PoolConfig(min_size=3, max_size=3, wedged_s=0.5, open_s=3.0, tick_s=0.1, replace_cooldown_s=1.0)


class PoolLane(KafkaLane):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool: ProducerPool | None = None
        if not self.negative:
            self.breakers, self.outcomes = {}, ()  # several breakers, one per member: none stands for the lane

    async def start(self) -> None:
        if self.negative:
            await super().start()
            return
        p = self.profile
        settings = KafkaSettings(self.settings.kafka_bootstrap, client_id=f"pool-{self.topic}",
                                 send_deadline_s=p.send_deadline_s, request_timeout_s=p.request_timeout_s,
                                 stop_timeout_s=2.0)
        config, pool_class, producer_class = POOL_CONFIG, ProducerPool, KafkaProducer
        mutant = self.mutant
        if mutant is not None:  # the client mutants apply to every member; the pool's to the pool
            settings, producer_class = mutant.kafka_settings(settings), mutant.kafka_producer_class
            config, pool_class = mutant.pool_config(config), mutant.pool_class
        breaker_config = p.breaker(kafka.RECORDED, kafka.IGNORED)

        def member(member_settings: KafkaSettings, breaker: CircuitBreaker | None,
                   ledger: DeliveryLedger) -> KafkaProducer:
            return producer_class(member_settings, breaker=breaker, ledger=ledger)

        self.pool = await pool_class(settings, config, on_event=self._record, factory=member,
                                     breaker_for=lambda name: _breaker(mutant, f"kafka:{name}",
                                                                       breaker_config)).start()
        self.producer = self.pool  # type: ignore[assignment]  # KafkaLane's op, close and probes use its API

    def _record(self, event: PoolEvent) -> None:
        details = dataclasses.asdict(event)
        del details["at"]  # the history stamps its own clock
        details["decision"] = details.pop("kind")  # History.add's own first argument is the event's kind
        self.history.add("pool", OK, lane=self.name, **details)

    def state(self) -> str:
        return "NONE" if self.pool is not None else super().state()

    async def probes(self, baseline_p99_s: float | None) -> None:
        await super().probes(baseline_p99_s)
        if self.pool is None:
            return
        health = self.pool.health()
        size = len(health)
        sick = [f"{h.member} {h.state}" for h in health if h.state != "healthy"]
        bounds_ok = self.pool.config.min_size <= size <= self.pool.config.max_size
        self.history.add("probe", OK if bounds_ok and not sick else FAIL, name="kafka.pool",
                         evidence=f"{size} members ({self.pool.config.min_size}-{self.pool.config.max_size})"
                                  + (f", not healthy: {', '.join(sick)}" if sick else ", all healthy")
                                  + f"; {len(self.pool.events)} scaling events")


def member_replaced_within(within_s: float) -> Check:
    """A pool member was replaced within ``within_s`` of the fault's start (the history's ``pool`` events)."""
    def check(history: History) -> Verdict:
        theirs = calls_not_the_labs(history, "kafka")
        if theirs:  # the pool events are the lab's ProducerPool's: a service's own producers record none
            return Verdict("", UNKNOWN, f"{theirs}: its producers' replacement is not in the history (the lab's "
                                        f"producer pool records it)")
        start, end = _window(history, "fault")
        replaced = [e for e in history.of("pool") if e.get("decision") == "replace" and start <= e.t <= end + within_s]
        if not replaced:
            kinds = sorted({str(e.get("decision")) for e in history.of("pool")})
            return Verdict("", FAIL, f"no member replaced during the fault (pool events: {', '.join(kinds) or 'none'})")
        first = replaced[0]
        took_s = first.t - start
        return Verdict("", PASS if took_s <= within_s else FAIL,
                       f"{first.get('member')} replaced by {first.get('new_member')} {took_s:.2f}s after the fault "
                       f"began (bound {within_s:g}s): {first.get('reason')}")
    return check


def acked_rate_held(component: str, fraction: float, window_s: float = 1.0) -> Check:
    """In every ``window_s`` of the fault phase, the successful calls per second on ``component`` (the lanes that
    exercise it: the lab's pool, or a service's own calls) are at least ``fraction`` of the baseline phase's."""
    def check(history: History) -> Verdict:
        lanes = covering_lanes(history, component)
        ok_ends = [e.get("ended", e.t) for e in history.of("op") if e.get("lane") in lanes and e.status == OK]
        base_start, base_end = _window(history, "baseline")
        baseline = sum(base_start <= t < base_end for t in ok_ends) / max(base_end - base_start, 1e-9)
        if baseline <= 0:
            return Verdict("", FAIL, "no successful call in the baseline")
        start, end = _window(history, "fault")
        rates = []
        t = start
        while t + window_s <= end + 1e-9:
            rates.append(sum(t <= e < t + window_s for e in ok_ends) / window_s)
            t += window_s
        if not rates:
            return Verdict("", FAIL, f"the fault phase is shorter than one window of {window_s:g}s")
        worst = min(rates)
        return Verdict("", PASS if worst >= fraction * baseline else FAIL,
                       f"successful calls per second in each {window_s:g}s of the fault: "
                       f"{', '.join(f'{r:.0f}' for r in rates)}; baseline {baseline:.1f}/s, bound "
                       f"{fraction:.0%} of it ({fraction * baseline:.1f}/s)")
    return check


def few_calls_stuck(component: str, stuck_s: float, at_most: int) -> Check:
    """At most ``at_most`` of the calls on ``component`` started in the fault phase took ``stuck_s`` or longer: a
    pool that routes around a dead connection leaves only what it had already handed to it there."""
    def check(history: History) -> Verdict:
        start, end = _window(history, "fault")
        lanes = covering_lanes(history, component)
        calls = [e for e in history.of("op") if e.get("lane") in lanes and start <= e.get("started", e.t) < end]
        stuck = [e for e in calls if e.get("latency_s", 0.0) >= stuck_s]
        return Verdict("", PASS if len(stuck) <= at_most else FAIL,
                       f"{len(stuck)} of the {len(calls)} calls started during the fault took {stuck_s:g}s or longer "
                       f"(at most {at_most})")
    return check


__all__ = ["POOL_CONFIG", "PoolLane", "acked_rate_held", "few_calls_stuck", "member_replaced_within"]
