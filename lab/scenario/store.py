"""The run history store: every `lab run` appends here (SQLite, schema versioned and migrated).

One row per run (environment: backend, host, commit, versions), one per scenario
result, one per check verdict, one per metric (detection and recovery times,
per-phase latency percentiles and error counts, the run's duration). Writers
take SQLite's write lock for the whole record, so concurrent runs append
whole records, never interleaved halves. A file that is not a store of ours,
or one written by a newer chaoslab, is a StoreError naming it; nothing is ever
overwritten or dropped to "repair" it.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sqlite3
import queue
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

from ..errors import StoreError
from .history import OK, History

CLOSE_WAIT_S = 120.0  # how long close() waits for the writes still queued (each waits BUSY_TIMEOUT_S at most)

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 30.0

# One list of statements per version: migrating from version v runs MIGRATIONS[v:], in order.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, backend TEXT NOT NULL,"
        " host TEXT NOT NULL, git_commit TEXT NOT NULL, environment TEXT NOT NULL)",
        "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL REFERENCES runs(id),"
        " scenario TEXT NOT NULL, negative_control INTEGER NOT NULL, verdict TEXT NOT NULL, duration_s REAL NOT NULL,"
        " error TEXT, recorded_at REAL NOT NULL)",
        "CREATE TABLE checks (result_id INTEGER NOT NULL REFERENCES results(id), name TEXT NOT NULL,"
        " verdict TEXT NOT NULL, evidence TEXT NOT NULL)",
        "CREATE TABLE metrics (result_id INTEGER NOT NULL REFERENCES results(id), name TEXT NOT NULL,"
        " value REAL NOT NULL)",
        "CREATE INDEX results_by_scenario ON results (scenario, negative_control, id)",
    ],
    # 2: each result's whole event history (calls, breaker states, phases, faults, resource samples),
    # zlib-compressed JSON, for `lab report`'s timelines
    [
        "CREATE TABLE timelines (result_id INTEGER PRIMARY KEY REFERENCES results(id), events BLOB NOT NULL)",
    ],
]


@dataclasses.dataclass(frozen=True)
class StoredResult:
    """One scenario's result as the store keeps it."""

    result_id: int
    run_id: int
    scenario: str
    verdict: str
    recorded_at: float
    metrics: dict[str, float]


METRIC_PHASES = ("baseline", "fault", "recovery")


def phase_metrics(history: History) -> dict[str, float]:
    """Per lane (the target's stream of calls; the lab's clients have one per component) and phase: latency
    p50/p95/p99 of the successful calls, and the error count. One pass over the history (a call ending on a
    phase boundary counts in both phases)."""
    windows = [(phase, window) for phase in METRIC_PHASES if (window := history.phase(phase)) is not None]
    latencies: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    for event in history.events:
        if event.kind != "op":
            continue
        lane = str(event.get("lane"))
        for phase, _ in windows:
            latencies.setdefault((lane, phase), [])
            errors.setdefault((lane, phase), 0)
        for phase, (start, end) in windows:
            if start <= event.t <= end:
                if event.status == OK:
                    latencies[lane, phase].append(float(event.get("latency_s", 0.0)))
                else:
                    errors[lane, phase] += 1
    metrics: dict[str, float] = {}
    for phase, _ in windows:
        for lane in sorted({lane for lane, _ in errors}):
            metrics[f"{lane}.{phase}.errors"] = float(errors[lane, phase])
            ordered = sorted(latencies[lane, phase])
            for pct in (50, 95, 99):
                if ordered:
                    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
                    metrics[f"{lane}.{phase}.p{pct}_s"] = ordered[index]
    return metrics


def environment(backend: str) -> dict[str, str]:
    from .. import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {"backend": backend, "host": platform.node(), "commit": commit or "unknown",
            "chaoslab": __version__, "python": platform.python_version()}


class RunStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"the run history {self.path} cannot be opened: {err}") from None
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreError(f"the run history {self.path} is not a chaoslab history store ({err}); "
                             f"move it aside to start a new one (nothing was changed)") from None
        except StoreError:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if self._current(conn):
            return  # a read: no write lock and no commit (two fsyncs) per connection
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" in tables:
                version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            elif tables - {"sqlite_sequence"}:
                raise StoreError(f"the run history {self.path} holds tables that are not chaoslab's "
                                 f"({', '.join(sorted(tables))}); nothing was changed")
            else:
                version = 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"the run history {self.path} has schema version {version}, newer than this "
                                 f"chaoslab's {SCHEMA_VERSION}: upgrade chaoslab (nothing was changed)")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _current(conn: sqlite3.Connection) -> bool:
        """The store is at this chaoslab's schema version (anything else: decided under the write lock)."""
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table: a new file, or not ours
            return False
        return row is not None and row[0] == str(SCHEMA_VERSION)

    def start_run(self, backend: str) -> int:
        env = environment(backend)
        conn = self._connect()
        try:
            cursor = conn.execute(
                "INSERT INTO runs (started_at, backend, host, git_commit, environment) VALUES (?, ?, ?, ?, ?)",
                (time.time(), backend, env["host"], env["commit"], json.dumps(env, sort_keys=True)))
            return int(cursor.lastrowid or 0)
        finally:
            conn.close()

    def record(self, run_id: int, result: Any) -> int:
        """Append one ScenarioResult (its verdicts and metrics) as one transaction."""
        from .resources import growth

        metrics = {**phase_metrics(result.history), **growth(result.history),
                   **{k: float(v) for k, v in result.measurements.items()}, "duration_s": float(result.duration_s)}
        return self.record_values(run_id, result.scenario, result.verdict, result.duration_s, metrics,
                                  [(v.check, v.result, v.evidence) for v in result.verdicts],
                                  negative_control=result.negative_control, error=result.error,
                                  timeline=result.history.to_json())

    def record_values(self, run_id: int, scenario: str, verdict: str, duration_s: float, metrics: dict[str, float],
                      checks: list[tuple[str, str, str]], negative_control: bool = False,
                      error: str | None = None, recorded_at: float | None = None,
                      timeline: list[dict[str, Any]] | None = None) -> int:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "INSERT INTO results (run_id, scenario, negative_control, verdict, duration_s, error, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, scenario, int(negative_control), verdict, duration_s, error,
                     time.time() if recorded_at is None else recorded_at))
                result_id = int(cursor.lastrowid or 0)
                conn.executemany("INSERT INTO checks (result_id, name, verdict, evidence) VALUES (?, ?, ?, ?)",
                                 [(result_id, *check) for check in checks])
                conn.executemany("INSERT INTO metrics (result_id, name, value) VALUES (?, ?, ?)",
                                 [(result_id, name, value) for name, value in sorted(metrics.items())])
                if timeline is not None:
                    conn.execute("INSERT INTO timelines (result_id, events) VALUES (?, ?)",
                                 (result_id, zlib.compress(json.dumps(timeline).encode(), 1)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result_id
        except sqlite3.Error as err:
            raise StoreError(f"could not append to the run history {self.path}: {err}") from None
        finally:
            conn.close()

    def results(self, scenario: str | None = None, negative_control: bool = False) -> Iterator[StoredResult]:
        """Oldest first."""
        conn = self._connect()
        try:
            query = ("SELECT id, run_id, scenario, verdict, recorded_at FROM results WHERE negative_control = ?"
                     + (" AND scenario = ?" if scenario else "") + " ORDER BY id")
            args: tuple[Any, ...] = (int(negative_control), scenario) if scenario else (int(negative_control),)
            rows = conn.execute(query, args).fetchall()
            metrics: dict[int, dict[str, float]] = {row[0]: {} for row in rows}
            for result_id, name, value in conn.execute("SELECT result_id, name, value FROM metrics"):
                if result_id in metrics:
                    metrics[result_id][name] = value
        except sqlite3.Error as err:
            raise StoreError(f"could not read the run history {self.path}: {err}") from None
        finally:
            conn.close()
        for result_id, run_id, name, verdict, recorded_at in rows:
            yield StoredResult(result_id, run_id, name, verdict, recorded_at, metrics[result_id])

    def timeline(self, result_id: int) -> list[dict[str, Any]] | None:
        """The stored event history of one result (None when it was recorded without one)."""
        conn = self._connect()
        try:
            row = conn.execute("SELECT events FROM timelines WHERE result_id = ?", (result_id,)).fetchone()
        except sqlite3.Error as err:
            raise StoreError(f"could not read the run history {self.path}: {err}") from None
        finally:
            conn.close()
        if row is None:
            return None
        try:
            events: list[dict[str, Any]] = json.loads(zlib.decompress(row[0]))
        except (zlib.error, ValueError) as err:
            raise StoreError(f"the run history {self.path}: the timeline of result {result_id} is damaged "
                             f"({err})") from None
        return events

    def checks(self, result_id: int) -> list[tuple[str, str, str]]:
        """(check, verdict, evidence) of one result."""
        conn = self._connect()
        try:
            return [tuple(row) for row in conn.execute(
                "SELECT name, verdict, evidence FROM checks WHERE result_id = ? ORDER BY rowid", (result_id,))]
        except sqlite3.Error as err:
            raise StoreError(f"could not read the run history {self.path}: {err}") from None
        finally:
            conn.close()


class BackgroundRecorder:
    """Appends a run's results to a RunStore on a thread of its own, in the order given, so the run does not
    wait for each write (metrics, the compressed timeline, SQLite's commit: ~15-70 ms on this machine)
    between one scenario and the next: the write overlaps the next scenario's first phases, which are
    mostly sleeps (bench/recording_bench.py measures what that saves).

    Guarantees: every submitted result is written, whole, before ``close`` returns (``close`` waits; the
    thread is not a daemon, so an interpreter that exits without ``close`` still waits for it); a write
    that fails is raised, as its StoreError, by the next ``submit`` or by ``close``, and no later result
    is written after it. A SIGKILL loses at most the result being written, as it would lose the scenario
    running. ``cpu_s`` is the writer thread's CPU time."""

    def __init__(self, store: RunStore, run_id: int) -> None:
        self.store, self.run_id = store, run_id
        self.cpu_s = 0.0
        self.written = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._error: StoreError | None = None
        self._thread = threading.Thread(target=self._write, name="run-store-writer")
        self._thread.start()

    def submit(self, result: Any) -> None:
        self._raise()
        self._queue.put(result)

    def close(self) -> None:
        """Waits for every submitted result to be written; raises the first write's StoreError."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(CLOSE_WAIT_S)
            if self._thread.is_alive():
                raise StoreError(f"the run history {self.store.path}: results still unwritten after "
                                 f"{CLOSE_WAIT_S:.0f} s (is another process holding its write lock?)")
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write(self) -> None:
        while True:
            result = self._queue.get()
            if result is None or self._error is not None:
                if result is None:
                    return
                continue  # after a failed write nothing more is written: the order is kept
            started = time.thread_time()
            try:
                self.store.record(self.run_id, result)
                self.written += 1
            except StoreError as err:
                self._error = err
            except Exception as err:  # a bug: still the caller's to see, never a silent loss
                self._error = StoreError(f"could not append to the run history {self.store.path}: "
                                         f"{type(err).__name__}: {err}")
            self.cpu_s += time.thread_time() - started
