"""The commands faults run on the compose backend (pure logic: no Docker engine runs here)."""

from __future__ import annotations

import os

import pytest

from lab.faults.fd import as_owner
from lab.faults.memory import host_memory_bytes, memory_update_command
from lab.faults.targets import owner_ids

pytestmark = pytest.mark.unit


def test_memory_limit_moves_memory_and_swap_together():
    assert memory_update_command("abc123", 64 * 1024 * 1024) == [
        "docker", "update", "--memory", "67108864", "--memory-swap", "67108864", "abc123"]


def test_host_memory_is_what_an_unlimited_container_gets_back():
    assert host_memory_bytes() > 1024 ** 3


def test_limits_are_changed_as_the_owner_by_numeric_id():
    uid, gid = owner_ids(os.getpid())
    assert (uid, gid) == (os.getuid(), os.getgid())
    assert as_owner(os.getpid(), ["prlimit", "--pid", "1"]) == [
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", "prlimit", "--pid", "1"]
