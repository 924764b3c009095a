"""A scenario says why it cannot run on a stack: Tansu for an Apache-Kafka-only one, Toxiproxy for one that
needs lab.proxy's protocol toxics (the nightly job runs the official images)."""

from __future__ import annotations

import dataclasses

import pytest

from lab.scenario import available

pytestmark = pytest.mark.unit


@dataclasses.dataclass
class Stack:
    kafka: str
    proxy: str

    def kafka_flavour(self) -> str:
        return self.kafka

    def proxy_flavour(self) -> str:
        return self.proxy


def runnable(stack: Stack) -> set[str]:
    return {name for name, scenario in available().items() if not scenario.skip_reason(stack)}


def test_each_stack_skips_exactly_what_it_lacks():
    everything = set(available())
    protocol = {"pg_serialization_failures", "pg_admin_shutdown", "kafka_not_leader", "kafka_written_not_acked"}
    assert runnable(Stack("apache", "lab.proxy")) == everything
    assert runnable(Stack("tansu", "lab.proxy")) == everything - {"kafka_partition_long"}  # local and stand-ins
    assert runnable(Stack("apache", "toxiproxy")) == everything - protocol  # the nightly's official images
    reason = available()["kafka_not_leader"].skip_reason(Stack("apache", "toxiproxy"))
    assert reason.startswith("the fault proxy is toxiproxy: ")


def test_a_scenario_whose_fault_needs_a_missing_command_says_which(monkeypatch):
    wedged = available()["kafka_pool_wedged"]
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = wedged.skip_reason(Stack("tansu", "lab.proxy"))
    assert reason.startswith("no nft, ss on PATH: ") and "nftables" in reason, reason
