"""The compose backend: official images via ``docker compose``, same host ports as local.

Only containers of the compose project ``chaoslab`` (and labelled
com.chaoslab.project) are touched.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ..config import Settings
from ..errors import BackendUnavailable, StackError
from . import state as state_file
from .state import ComponentState, StackState

PROJECT = "chaoslab"
SERVICES = {"proxy": "toxiproxy", "postgres": "postgres", "kafka": "kafka"}
IMAGES = ("postgres:16", "apache/kafka:3.9.0", "ghcr.io/shopify/toxiproxy:2.12.0")
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose_command(*args: str, compose_file: Path = COMPOSE_FILE) -> list[str]:
    return ["docker", "compose", "-f", str(compose_file), "-p", PROJECT, *args]


def up_command(timeout_s: float) -> list[str]:
    return compose_command("up", "-d", "--wait", "--wait-timeout", str(int(timeout_s)),
                           *SERVICES.values())


def down_command(purge: bool) -> list[str]:
    return compose_command("down", "--remove-orphans", *(["--volumes"] if purge else []))


def parse_ps(output: str) -> dict[str, dict]:
    """``docker compose ps --format json`` (one object per line, or one array) -> by service."""
    output = output.strip()
    if not output:
        return {}
    rows = json.loads(output) if output.startswith("[") else [json.loads(line) for line in output.splitlines()]
    return {row["Service"]: row for row in rows}


class ComposeBackend:
    name = "compose"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _run(self, argv: list[str], timeout_s: float) -> str:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except FileNotFoundError:
            raise BackendUnavailable("the docker command is not installed: use the local backend "
                                     "(--backend local)") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"`{' '.join(argv)}` did not finish within {timeout_s:g}s") from None
        if result.returncode != 0:
            raise StackError(f"`{' '.join(argv)}` failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def up(self) -> dict[str, str]:
        current = state_file.load(self.settings.state_path)
        if current is not None and current.backend != self.name:
            raise StackError(f"a {current.backend} stack is up; run `python -m lab down` first")
        self._run(up_command(self.settings.start_timeout_s * 4), self.settings.start_timeout_s * 5)
        rows = parse_ps(self._run(compose_command("ps", "--format", "json"), 30))
        stack = StackState(self.name, {
            name: ComponentState(name, container=rows.get(service, {}).get("ID"), info={"service": service})
            for name, service in SERVICES.items()})
        state_file.save(self.settings.state_path, stack)
        return {name: "started" for name in SERVICES}

    def down(self, purge: bool = False) -> list[str]:
        self._run(down_command(purge), 120)
        state_file.clear(self.settings.state_path)
        return list(SERVICES)

    def status(self) -> dict:
        rows = parse_ps(self._run(compose_command("ps", "--all", "--format", "json"), 30))
        report = {}
        for name, service in SERVICES.items():
            row = rows.get(service, {})
            state = row.get("State", "absent")
            report[name] = {"pid": None, "container": row.get("ID"), "running": state in ("running", "paused"),
                            "paused": state == "paused", "healthy": row.get("Health") == "healthy",
                            "health": row.get("Status", state)}
        return {"backend": self.name, "up": bool(rows), "components": report}

    def logs(self, names: list[str], lines: int) -> str:
        services = [SERVICES[n] for n in names] if names else list(SERVICES.values())
        return self._run(compose_command("logs", "--no-color", "--tail", str(lines), *services), 60)

    def resume_paused(self) -> list[str]:
        resumed = []
        for name, entry in self.status()["components"].items():
            if entry["paused"]:
                self._run(compose_command("unpause", SERVICES[name]), 60)
                resumed.append(name)
        return resumed
