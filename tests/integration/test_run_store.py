"""The run history store on a real SQLite file: appends, concurrent writers, and files it must not touch."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from lab.errors import StoreError
from lab.scenario.store import SCHEMA_VERSION, RunStore

pytestmark = pytest.mark.integration


def _writer(path: str, worker: int, count: int) -> None:
    store = RunStore(__import__("pathlib").Path(path))
    run_id = store.start_run("local")
    for index in range(count):
        store.record_values(run_id, f"scenario-{worker}", "pass", 1.0,
                            {"recovery_s": index / 100, "pg.baseline.errors": 0.0},
                            [("a check", "pass", f"worker {worker} result {index}")])


def test_results_come_back_in_order_with_their_metrics(tmp_path):
    store = RunStore(tmp_path / "history.sqlite")
    run_id = store.start_run("compose")
    store.record_values(run_id, "a", "pass", 2.0, {"recovery_s": 0.5}, [("c", "pass", "ok")])
    store.record_values(run_id, "a", "fail", 3.0, {"recovery_s": 1.5}, [("c", "fail", "no")])
    stored = list(store.results("a"))
    assert [r.verdict for r in stored] == ["pass", "fail"]
    assert stored[1].metrics == {"recovery_s": 1.5} and stored[0].run_id == stored[1].run_id == run_id
    assert list(store.results("a", negative_control=True)) == []


def test_concurrent_runs_append_whole_records(tmp_path):
    path = tmp_path / "history.sqlite"
    workers = [multiprocessing.Process(target=_writer, args=(str(path), w, 25)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    stored = list(RunStore(path).results())
    assert len(stored) == 100
    assert all(set(r.metrics) == {"recovery_s", "pg.baseline.errors"} for r in stored)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM checks").fetchone()[0] == 100
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_file_that_is_not_a_store_is_an_error_and_left_as_it_was(tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"not a database at all\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a chaoslab history store"):
        RunStore(path).start_run("local")
    assert path.read_bytes() == before


def test_another_programs_database_and_a_newer_schema_are_refused(tmp_path):
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE orders (id INTEGER)")
    with pytest.raises(StoreError, match="not chaoslab's"):
        RunStore(foreign).start_run("local")
    newer = tmp_path / "newer.sqlite"
    RunStore(newer).start_run("local")
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    with pytest.raises(StoreError, match="newer than this chaoslab"):
        list(RunStore(newer).results())


def _result(scenario: str, verdict: str):  # what BackgroundRecorder hands to RunStore.record
    import types

    from lab.scenario.checks import Verdict
    from lab.scenario.history import History

    history = History(clock=lambda: 0.0)
    history.add("phase", t=0.0, name="baseline", edge="start")
    history.add("op", t=0.5, lane="pg", started=0.4, ended=0.5, latency_s=0.1)
    history.add("phase", t=1.0, name="baseline", edge="end")
    return types.SimpleNamespace(scenario=scenario, verdict=verdict, duration_s=1.0, history=history,
                                 measurements={"recovery_s": 0.2}, negative_control=False, error=None,
                                 verdicts=[Verdict("c", verdict, "evidence")])


def test_the_background_recorder_writes_every_result_in_order_before_close_returns(tmp_path):
    from lab.scenario.store import BackgroundRecorder

    store = RunStore(tmp_path / "history.sqlite")
    recorder = BackgroundRecorder(store, store.start_run("local"))
    for index in range(20):
        recorder.submit(_result(f"s{index % 3}", "pass" if index % 4 else "fail"))
    recorder.close()
    stored = list(store.results())
    assert [(r.scenario, r.verdict) for r in stored] == [(f"s{i % 3}", "pass" if i % 4 else "fail") for i in range(20)]
    assert stored[0].metrics["pg.baseline.p50_s"] == 0.1 and store.timeline(stored[0].result_id) is not None
    assert recorder.written == 20 and recorder.cpu_s > 0


def test_a_failed_background_write_is_raised_and_nothing_after_it_is_written(tmp_path):
    from lab.scenario.store import BackgroundRecorder

    store = RunStore(tmp_path / "history.sqlite")
    recorder = BackgroundRecorder(store, store.start_run("local"))
    recorder.submit(_result("first", "pass"))
    broken = _result("broken", "pass")
    broken.measurements = {"recovery_s": "not a number"}  # RunStore.record's float() fails: a bug, not lost
    recorder.submit(broken)
    recorder.submit(_result("after", "pass"))
    with pytest.raises(StoreError, match="could not append to the run history .*ValueError"):
        recorder.close()
    assert [r.scenario for r in store.results()] == ["first"]
    with pytest.raises(StoreError):
        recorder.submit(_result("later", "pass"))
