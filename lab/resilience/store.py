"""Where a breaker's state survives a process restart: a pluggable protocol, two stores.

Only what must survive is kept: the state, when an OPEN breaker may try again
(wall-clock time, since monotonic clocks restart with the process), and how
many times in a row it opened (for backoff).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path
from typing import Protocol

from ..errors import BreakerError


@dataclasses.dataclass(frozen=True)
class StoredState:
    state: str
    open_until_wall: float
    consecutive_openings: int


class StateStore(Protocol):
    def load(self, name: str) -> StoredState | None: ...
    def save(self, name: str, state: StoredState) -> None: ...


class FileStateStore:
    """One JSON file per breaker in ``directory``, replaced atomically."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def _path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):02x}" for c in name)
        return self.directory / f"{safe}.json"

    def load(self, name: str) -> StoredState | None:
        try:
            data = json.loads(self._path(name).read_text())
            return StoredState(str(data["state"]), float(data["open_until_wall"]), int(data["consecutive_openings"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BreakerError(f"breaker state file {self._path(name)} is unreadable: {err}") from None

    def save(self, name: str, state: StoredState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(dataclasses.asdict(state)))
        os.replace(temp, path)


class SQLiteStateStore:
    """All breakers in one SQLite table; safe to share between processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS breaker_state (name TEXT PRIMARY KEY, state TEXT NOT NULL, "
                       "open_until_wall REAL NOT NULL, consecutive_openings INTEGER NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5.0)

    def load(self, name: str) -> StoredState | None:
        with self._connect() as db:
            row = db.execute("SELECT state, open_until_wall, consecutive_openings FROM breaker_state WHERE name = ?",
                             (name,)).fetchone()
        return StoredState(row[0], float(row[1]), int(row[2])) if row else None

    def save(self, name: str, state: StoredState) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO breaker_state VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "state = excluded.state, open_until_wall = excluded.open_until_wall, "
                       "consecutive_openings = excluded.consecutive_openings",
                       (name, state.state, state.open_until_wall, state.consecutive_openings))
