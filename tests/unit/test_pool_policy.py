"""The producer pool's scaling policy: decisions from numbers alone (no sockets, no clock)."""

from __future__ import annotations

import pytest

from lab.clients.pool_policy import REPLACE, SCALE_DOWN, SCALE_UP, MemberStats, PoolConfig, decide
from lab.errors import ConfigError

pytestmark = pytest.mark.unit

CONFIG = PoolConfig(min_size=1, max_size=3, backlog_per_producer=100, p95_latency_s=0.2, idle_s=5.0,
                    wedged_s=2.0, open_s=3.0, cooldown_s=1.0, replace_cooldown_s=1.0)
NOW = 100.0
LONG_AGO = float("-inf")


def member(name: str, in_flight: int = 0, used_ago_s: float = 0.0, progress_ago_s: float = 0.0,
           open_for_s: float | None = None, p95_s: float | None = 0.01) -> MemberStats:
    return MemberStats(name, in_flight, NOW - used_ago_s, NOW - progress_ago_s,
                       None if open_for_s is None else NOW - open_for_s, p95_s)


def kinds(decisions: list) -> list[tuple[str, str | None]]:
    return [(d.kind, d.member) for d in decisions]


def test_a_quiet_healthy_pool_does_nothing() -> None:
    assert decide(NOW, [member("a", in_flight=3)], CONFIG, LONG_AGO, LONG_AGO) == []


def test_backlog_over_the_bound_grows_the_pool() -> None:
    decisions = decide(NOW, [member("a", in_flight=150), member("b", in_flight=90)], CONFIG, LONG_AGO, LONG_AGO)
    assert kinds(decisions) == [(SCALE_UP, None)]
    assert "backlog 120" in decisions[0].reason


def test_backlog_at_the_bound_does_not() -> None:
    assert decide(NOW, [member("a", in_flight=100)], CONFIG, LONG_AGO, LONG_AGO) == []


def test_p95_over_the_bound_grows_the_pool() -> None:
    decisions = decide(NOW, [member("a", in_flight=1, p95_s=0.3)], CONFIG, LONG_AGO, LONG_AGO)
    assert kinds(decisions) == [(SCALE_UP, None)]
    assert "300 ms" in decisions[0].reason


def test_never_above_max_size() -> None:
    members = [member(n, in_flight=500, p95_s=1.0) for n in "abc"]
    assert decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO) == []


def test_no_resize_within_the_cooldown() -> None:
    assert decide(NOW, [member("a", in_flight=500)], CONFIG, NOW - 0.5, LONG_AGO) == []
    assert kinds(decide(NOW, [member("a", in_flight=500)], CONFIG, NOW - 1.0, LONG_AGO)) == [(SCALE_UP, None)]


def test_an_idle_member_is_retired_but_never_below_min() -> None:
    members = [member("a", used_ago_s=0.1), member("b", used_ago_s=6.0)]
    assert kinds(decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO)) == [(SCALE_DOWN, "b")]
    assert decide(NOW, [member("b", used_ago_s=60.0)], CONFIG, LONG_AGO, LONG_AGO) == []


def test_a_member_with_sends_in_flight_is_not_idle() -> None:
    members = [member("a"), member("b", in_flight=1, used_ago_s=6.0, progress_ago_s=0.5)]
    assert decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO) == []


def test_a_wedged_member_is_replaced_when_another_makes_progress() -> None:
    members = [member("a", in_flight=5), member("b", in_flight=40, progress_ago_s=2.5)]
    decisions = decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO)
    assert kinds(decisions) == [(REPLACE, "b")]
    assert "40 sends outstanding" in decisions[0].reason


def test_a_stall_shorter_than_the_bound_is_not_a_wedge() -> None:
    members = [member("a", in_flight=5), member("b", in_flight=40, progress_ago_s=1.9)]
    assert decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO) == []


def test_when_every_member_is_stuck_it_is_the_broker_and_none_is_replaced() -> None:
    members = [member("a", in_flight=5, progress_ago_s=3.0), member("b", in_flight=40, progress_ago_s=2.5)]
    assert decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO) == []


def test_a_breaker_open_for_long_is_replaced() -> None:
    members = [member("a"), member("b", open_for_s=3.5)]
    assert kinds(decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO)) == [(REPLACE, "b")]
    assert decide(NOW, [member("a"), member("b", open_for_s=2.0)], CONFIG, LONG_AGO, LONG_AGO) == []


def test_one_replacement_per_cooldown() -> None:
    members = [member("a"), member("b", in_flight=4, progress_ago_s=9.0)]
    assert decide(NOW, members, CONFIG, LONG_AGO, NOW - 0.5) == []


def test_a_replaced_member_is_neither_counted_for_growth_nor_retired() -> None:
    members = [member("a", in_flight=10), member("b", in_flight=900, progress_ago_s=5.0, used_ago_s=9.0)]
    assert kinds(decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO)) == [(REPLACE, "b")]


@pytest.mark.parametrize("changes, named", [
    ({"min_size": 0}, "min_size"), ({"max_size": 0}, "max_size"), ({"min_size": 3, "max_size": 2}, "max_size"),
    ({"wedged_s": 0}, "wedged_s"), ({"idle_s": -1}, "idle_s"), ({"cooldown_s": -0.1}, "cooldown_s"),
    ({"backlog_per_producer": 1.5}, "backlog_per_producer"), ({"tick_s": True}, "tick_s"),
])
def test_bad_config_is_refused_naming_the_field(changes: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        PoolConfig(**changes)


def test_a_slow_p95_with_nothing_in_flight_does_not_grow_the_pool() -> None:
    assert decide(NOW, [member("a", in_flight=0, p95_s=0.3)], CONFIG, LONG_AGO, LONG_AGO) == []


def test_a_member_with_nothing_in_flight_is_not_wedged_however_long_since_its_last_ack() -> None:
    members = [member("a", in_flight=2), member("b", in_flight=0, progress_ago_s=30.0, used_ago_s=1.0)]
    assert decide(NOW, members, CONFIG, LONG_AGO, LONG_AGO) == []
