"""The producer pool's scaling policy: decisions from numbers, no sockets, no clock of its own.

Why a pure function: every decision the pool takes (grow, shrink, replace a member) must be
explainable from the figures it saw, testable without a broker, and recorded as an event. The
pool (producer_pool.py) measures, calls ``decide`` once per tick with a ``MemberStats`` per member,
and carries the decisions out.

What is guaranteed, for one call of ``decide``:
* the pool never shrinks below ``min_size`` and never grows above ``max_size``;
* at most one scale-up per call, and none within ``cooldown_s`` of the last size change; a slow
  p95 grows the pool only while sends are in flight (growth serves waiting sends, not old figures);
* a member is replaced when it is wedged (sends outstanding and no acknowledgement for
  ``wedged_s``, while some other member did get one in that time: if every member is stuck the
  broker is, and a new producer would meet the same broker) or its breaker has been OPEN for
  ``open_s``; at most one replacement per ``replace_cooldown_s``;
* a member is retired as idle when it has not been given a send for ``idle_s`` and the pool is
  above ``min_size``; a member being replaced is never also retired.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from ..errors import ConfigError

SCALE_UP, SCALE_DOWN, REPLACE = "scale_up", "scale_down", "replace"


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """Bounds of the pool; times in seconds on the monotonic clock."""

    min_size: int = 1
    max_size: int = 4
    backlog_per_producer: int = 500  # mean in-flight sends per member above which the pool grows
    p95_latency_s: float = 0.25  # recent p95 send latency above which the pool grows
    recent_s: float = 1.0  # "recent": sends resolved within this long (older latencies no longer count)
    idle_s: float = 10.0  # a member given no send for this long is retired (never below min_size)
    wedged_s: float = 2.0  # sends outstanding and no acknowledgement for this long: replaced
    open_s: float = 3.0  # breaker OPEN for this long: replaced
    cooldown_s: float = 1.0  # between size changes
    replace_cooldown_s: float = 1.0  # between replacements
    tick_s: float = 0.1  # how often the pool measures and decides

    def __post_init__(self) -> None:
        for name in ("min_size", "max_size", "backlog_per_producer"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"PoolConfig: {name} must be a positive integer, not {value!r}")
        if self.max_size < self.min_size:
            raise ConfigError(f"PoolConfig: max_size ({self.max_size}) is below min_size ({self.min_size})")
        for name in ("p95_latency_s", "recent_s", "idle_s", "wedged_s", "open_s", "tick_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"PoolConfig: {name} must be a positive number of seconds, not {value!r}")
        for name in ("cooldown_s", "replace_cooldown_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"PoolConfig: {name} must be a number of seconds >= 0, not {value!r}")


@dataclasses.dataclass(frozen=True)
class MemberStats:
    """What the pool measured of one member at ``now`` (times on the same clock as ``now``)."""

    member: str
    in_flight: int  # sends handed to it and not resolved yet
    last_used_at: float  # the last send it was given (its start, if none yet)
    last_progress_at: float  # its last acknowledgement, or when its in-flight last rose from 0
    open_since: float | None  # when its breaker was first seen OPEN (None: not OPEN)
    p95_s: float | None  # its recent p95 send latency (None: no recent sends)


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str  # SCALE_UP | SCALE_DOWN | REPLACE
    reason: str
    member: str | None = None  # the member retired or replaced (None for a scale-up)


def wedged(m: MemberStats, now: float, config: PoolConfig) -> bool:
    return m.in_flight > 0 and now - m.last_progress_at >= config.wedged_s


def decide(now: float, members: Sequence[MemberStats], config: PoolConfig, last_resize_at: float,
           last_replace_at: float) -> list[Decision]:
    """The pool's decisions at ``now`` (see the module docstring for what they guarantee)."""
    decisions: list[Decision] = []
    replaced: set[str] = set()
    stuck = [m for m in members if wedged(m, now, config)]
    if now - last_replace_at >= config.replace_cooldown_s:
        candidate: Decision | None = None
        if stuck and len(stuck) < len(members):
            worst = min(stuck, key=lambda m: m.last_progress_at)
            candidate = Decision(REPLACE, f"wedged: {worst.in_flight} sends outstanding, no acknowledgement for "
                                          f"{now - worst.last_progress_at:.2f}s (bound {config.wedged_s:g}s)",
                                 worst.member)
        else:
            fenced = [m for m in members if m.open_since is not None and now - m.open_since >= config.open_s]
            if fenced:
                worst = min(fenced, key=lambda m: m.open_since or now)
                candidate = Decision(REPLACE, f"breaker OPEN for {now - (worst.open_since or now):.2f}s "
                                              f"(bound {config.open_s:g}s)", worst.member)
        if candidate is not None:
            decisions.append(candidate)
            replaced.add(candidate.member or "")
    if now - last_resize_at < config.cooldown_s:
        return decisions
    healthy = [m for m in members if m.member not in replaced and not wedged(m, now, config)
               and m.open_since is None]
    if len(members) < config.max_size and healthy:
        backlog = sum(m.in_flight for m in healthy) / len(healthy)
        p95s = [m.p95_s for m in healthy if m.p95_s is not None]
        if backlog > config.backlog_per_producer:
            decisions.append(Decision(SCALE_UP, f"backlog {backlog:.0f} sends per producer "
                                                f"(bound {config.backlog_per_producer})"))
            return decisions
        if p95s and max(p95s) > config.p95_latency_s and backlog > 0:  # slow, and sends waiting on it
            decisions.append(Decision(SCALE_UP, f"p95 latency {max(p95s) * 1000:.0f} ms "
                                                f"(bound {config.p95_latency_s * 1000:.0f} ms)"))
            return decisions
    if len(members) > config.min_size:
        idle = [m for m in members if m.member not in replaced and m.in_flight == 0
                and now - m.last_used_at >= config.idle_s]
        if idle:
            oldest = min(idle, key=lambda m: m.last_used_at)
            decisions.append(Decision(SCALE_DOWN, f"idle for {now - oldest.last_used_at:.1f}s "
                                                  f"(bound {config.idle_s:g}s)", oldest.member))
    return decisions


__all__ = ["REPLACE", "SCALE_DOWN", "SCALE_UP", "Decision", "MemberStats", "PoolConfig", "decide", "wedged"]
