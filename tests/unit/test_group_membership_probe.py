"""The consumer-group probes: kept membership and rejoined are both recorded, each failing where the other
passes (a probe that only ever records OK under one name or the other could never fail a check); the
consumer_drops_group mutant gives up its membership once per lost coordinator."""

from __future__ import annotations

import asyncio
import types

import pytest

from lab.config import Settings
from lab.scenario.history import FAIL, OK, History
from lab.scenario.mutants import drop_membership_when_dead
from lab.scenario.targets import GroupConsumer

pytestmark = pytest.mark.unit


class FakeCoordinator:
    """What the probes read of aiokafka's group coordinator, and what the mutant calls on it."""

    def __init__(self, member_id: str, generation: int) -> None:
        self.member_id, self.generation, self.coordinator_id, self.resets = member_id, generation, 1, 0

    def coordinator_dead(self) -> None:
        self.coordinator_id = None

    def reset_generation(self) -> None:
        self.resets += 1
        self.member_id, self.generation = "", -1


def consumer(cls: type[GroupConsumer], first: tuple[str, int], now: FakeCoordinator) -> GroupConsumer:
    group = cls(Settings.from_env(), "topic", 10.0, History())
    group.consumer = types.SimpleNamespace(_coordinator=now)
    group.members = [first]
    return group


def probes(group: GroupConsumer) -> dict[str, str]:
    asyncio.run(group.probes([]))
    return {e.get("name"): e.status for e in group.history.of("probe")}


def test_the_same_member_kept_its_membership_and_did_not_rejoin():
    got = probes(consumer(GroupConsumer, ("m1", 1), FakeCoordinator("m1", 1)))
    assert got["kafka.kept_membership"] == OK and got["kafka.rejoined"] == FAIL


def test_a_new_member_id_or_generation_rejoined_and_did_not_keep_its_membership():
    for now in (FakeCoordinator("m2", 2), FakeCoordinator("m1", 2)):
        got = probes(consumer(GroupConsumer, ("m1", 1), now))
        assert got["kafka.kept_membership"] == FAIL and got["kafka.rejoined"] == OK


def test_the_mutant_drops_its_membership_each_time_its_coordinator_is_marked_dead():
    coordinator = FakeCoordinator("m1", 1)
    drop_membership_when_dead(coordinator)
    coordinator.coordinator_dead()
    coordinator.coordinator_dead()  # already dead: no second drop
    assert coordinator.resets == 1 and (coordinator.member_id, coordinator.generation) == ("", -1)
    coordinator.coordinator_id = 1
    coordinator.coordinator_dead()
    assert coordinator.resets == 2
