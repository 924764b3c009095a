"""The state file (.lab/state.json): which backend is up and what it started.

Written atomically (temp file + rename) so a killed command never leaves half
a file; ``down`` and ``heal`` trust only what is recorded here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..errors import StackError
from .procs import ProcessRecord


@dataclasses.dataclass
class ComponentState:
    name: str
    process: ProcessRecord | None = None  # local backend
    container: str | None = None  # compose backend
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "process": self.process.to_json() if self.process else None,
            "container": self.container,
            "info": self.info,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ComponentState":
        process = ProcessRecord.from_json(data["process"]) if data.get("process") else None
        return cls(data["name"], process, data.get("container"), dict(data.get("info") or {}))


@dataclasses.dataclass
class StackState:
    backend: str
    components: dict[str, ComponentState] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "components": {k: v.to_json() for k, v in self.components.items()}}


def state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def load(state_dir: Path) -> StackState | None:
    path = state_file(state_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise StackError(f"the state file {path} is unreadable ({err}); remove it after stopping any "
                         f"postgres, tansu or lab.proxy processes by hand") from None
    return StackState(data["backend"], {k: ComponentState.from_json(v) for k, v in data["components"].items()})


def save(state_dir: Path, state: StackState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_file(state_dir)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(state.to_json(), indent=2))
    os.replace(temp, path)


def clear(state_dir: Path) -> None:
    try:
        state_file(state_dir).unlink()
    except FileNotFoundError:
        pass
