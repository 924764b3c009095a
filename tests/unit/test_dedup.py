"""SeenIds: each id once within its window, in bounded memory, evictions counted."""

from __future__ import annotations

import sys

import pytest

from lab.clients.dedup import SeenIds
from lab.errors import ConfigError

pytestmark = pytest.mark.unit


def test_each_id_is_new_once() -> None:
    seen = SeenIds(max_ids=10)
    assert [seen.first_time(i) for i in ("a", "b", "a", "c", "b")] == [True, True, False, True, False]
    assert seen.duplicates == 2 and len(seen) == 3


def test_the_window_is_bounded_and_evictions_are_counted() -> None:
    seen = SeenIds(max_ids=3)
    for message_id in "abcde":
        seen.first_time(message_id)
    assert len(seen) == 3 and seen.evicted == 2 and "a" not in seen and "e" in seen
    assert seen.first_time("a")  # past the window a duplicate is not caught, and that is counted above


def test_memory_per_remembered_id_is_as_documented() -> None:
    seen = SeenIds(max_ids=100_000)
    ids = [f"{i:032x}" for i in range(100_000)]
    for message_id in ids:
        seen.first_time(message_id)
    per_id = (sys.getsizeof(seen._ids) + sum(map(sys.getsizeof, ids))) / len(ids)
    assert per_id < 200, per_id  # the module docstring says ~180 bytes for a 32-character id


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_a_bad_window_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_ids"):
        SeenIds(max_ids=bad)  # type: ignore[arg-type]
