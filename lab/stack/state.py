"""The state file (.lab/state.json): which backend is up and what it started.

Written atomically and durably (temp file, fsync, rename), mode 0600 in a 0700
directory, so a killed command never leaves half a file and other users read
nothing. Validated on read: a file of the wrong shape is a ``StateError``
naming the file and the problem, never a traceback. ``down`` and ``heal``
trust only what is recorded here; ``salvage`` lets ``down`` stop whatever a
damaged file still records.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..errors import StateError
from ..files import write_private
from .procs import ProcessRecord

BACKEND_NAMES = ("local", "compose")


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
    def from_json(cls, key: str, data: object) -> "ComponentState":
        """Raises ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"component {key!r} is {type(data).__name__}, not an object")
        name = data.get("name", key)
        if name != key:
            raise ValueError(f"component {key!r} is named {name!r}")
        process = data.get("process")
        if process is not None:
            process = _process(key, process)
        container = data.get("container")
        if container is not None and not isinstance(container, str):
            raise ValueError(f"component {key!r} has a container id that is not a string")
        info = data.get("info") or {}
        if not isinstance(info, dict):
            raise ValueError(f"component {key!r} has info that is not an object")
        return cls(key, process, container, dict(info))


def _process(key: str, data: object) -> ProcessRecord:
    if not isinstance(data, dict):
        raise ValueError(f"component {key!r} has a process that is not an object")
    fields = {"pid": int, "start_ticks": int, "argv0": str}
    for field, kind in fields.items():
        value = data.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"component {key!r}: process field {field!r} is {value!r}, not {kind.__name__}")
    if data["pid"] <= 0:
        raise ValueError(f"component {key!r}: pid {data['pid']} is not a process id")
    return ProcessRecord(data["pid"], data["start_ticks"], data["argv0"])


@dataclasses.dataclass
class StackState:
    backend: str
    components: dict[str, ComponentState] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "components": {k: v.to_json() for k, v in self.components.items()}}


def state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _read(path: Path) -> object | None:
    try:
        data: object = json.loads(path.read_text())
        return data
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateError(f"the state file {path} is unreadable ({err.strerror or err}); run `python -m lab down` "
                         "(it clears the file), then stop any postgres, tansu or lab.proxy processes by "
                         "hand") from None
    except ValueError as err:
        raise StateError(f"the state file {path} is not valid JSON ({err}); run `python -m lab down` "
                         "(it clears the file), then stop any postgres, tansu or lab.proxy processes by "
                         "hand") from None


def parse(path: Path, data: object) -> tuple[StackState, list[str]]:
    """The state in ``data``, and a list of what could not be read (empty when the file is whole)."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
    backend = data.get("backend")
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend is {backend!r}, not one of {', '.join(BACKEND_NAMES)}")
    components = data.get("components")
    if not isinstance(components, dict):
        raise ValueError(f"components is {type(components).__name__}, not an object")
    state, problems = StackState(backend), []
    for key, value in components.items():
        try:
            state.components[key] = ComponentState.from_json(key, value)
        except ValueError as err:
            problems.append(str(err))
    return state, problems


def load(state_dir: Path) -> StackState | None:
    """The recorded state, None if nothing is recorded; a StateError if the file is damaged."""
    path = state_file(state_dir)
    data = _read(path)
    if data is None:
        return None
    try:
        state, problems = parse(path, data)
    except ValueError as err:
        problems, state = [str(err)], None
    if problems:
        raise StateError(f"the state file {path} is damaged: {'; '.join(problems)}. Run `python -m lab down`: it "
                         f"stops what the file still records, says what it could not, and clears the file")
    return state


def salvage(state_dir: Path) -> tuple[StackState | None, list[str]]:
    """For ``down``: whatever a damaged state file still records, and what could not be read. Never raises."""
    path = state_file(state_dir)
    try:
        data = _read(path)
    except StateError as err:
        return None, [str(err)]
    if data is None:
        return None, []
    try:
        state, problems = parse(path, data)
    except ValueError as err:
        state, problems = None, [str(err)]
    return state, [f"the state file {path} is damaged: {problem}" for problem in problems]


def save(state_dir: Path, state: StackState) -> None:
    write_private(state_file(state_dir), json.dumps(state.to_json(), indent=2).encode())


def clear(state_dir: Path) -> None:
    try:
        state_file(state_dir).unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise StateError(f"cannot remove the state file {state_file(state_dir)}: {err.strerror}") from None
