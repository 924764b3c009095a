"""Schema 2 of the run store: each result's timeline, and a version-1 store migrated in place."""

from __future__ import annotations

import sqlite3

import pytest

from lab.errors import StoreError
from lab.scenario.store import SCHEMA_VERSION, RunStore

pytestmark = pytest.mark.integration

EVENTS = [{"t": 0.5, "kind": "op", "status": "ok", "target": "pg", "latency_s": 0.002},
          {"t": 0.6, "kind": "resource", "status": "ok", "process": "workload", "fds": 12}]


def test_a_timeline_comes_back_as_it_was_recorded(tmp_path):
    store = RunStore(tmp_path / "history.sqlite")
    run_id = store.start_run("local")
    with_timeline = store.record_values(run_id, "a", "pass", 1.0, {}, [("c", "pass", "ok")], timeline=EVENTS)
    without = store.record_values(run_id, "a", "pass", 1.0, {}, [])
    assert store.timeline(with_timeline) == EVENTS and store.timeline(without) is None
    assert store.checks(with_timeline) == [("c", "pass", "ok")]


def test_a_version_1_store_is_migrated_and_keeps_its_results(tmp_path):
    path = tmp_path / "history.sqlite"
    store = RunStore(path)
    old = store.record_values(store.start_run("local"), "a", "fail", 2.0, {"recovery_s": 0.5}, [])
    conn = sqlite3.connect(path)  # make it what chaoslab 1 wrote: no timelines table, version 1
    conn.execute("DROP TABLE timelines")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    reopened = RunStore(path)
    [stored] = list(reopened.results("a"))
    assert (stored.result_id, stored.verdict, stored.metrics) == (old, "fail", {"recovery_s": 0.5})
    assert reopened.timeline(old) is None
    new = reopened.record_values(reopened.start_run("local"), "a", "pass", 1.0, {}, [], timeline=EVENTS)
    assert reopened.timeline(new) == EVENTS
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == 2


def test_a_damaged_timeline_is_a_clear_error(tmp_path):
    path = tmp_path / "history.sqlite"
    store = RunStore(path)
    result_id = store.record_values(store.start_run("local"), "a", "pass", 1.0, {}, [], timeline=EVENTS)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE timelines SET events = x'00ff' WHERE result_id = ?", (result_id,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"the timeline of result {result_id} is damaged"):
        store.timeline(result_id)
