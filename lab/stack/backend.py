"""Choosing a backend: compose only where a Docker engine answers and the images can be had."""

from __future__ import annotations

import shutil
import subprocess

from ..config import Settings
from . import state as state_file
from .compose import IMAGES, ComposeBackend
from .local import LocalBackend

Backend = LocalBackend | ComposeBackend


def _docker(*args: str, timeout_s: float) -> tuple[bool, str]:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"`docker {' '.join(args)}` gave no answer within {timeout_s:g}s"
    output = (result.stdout if result.returncode == 0 else result.stderr or result.stdout).strip()
    return result.returncode == 0, output.splitlines()[-1] if output else f"exit code {result.returncode}"


def detect(settings: Settings) -> tuple[str, str]:
    """(backend name, why) for LAB_BACKEND / --backend = auto|local|compose."""
    if settings.backend != "auto":
        return settings.backend, f"{settings.backend} was asked for"
    if shutil.which("docker") is None:
        return "local", "there is no docker command"
    ok, detail = _docker("info", "--format", "{{.ServerVersion}}", timeout_s=5)
    if not ok:
        return "local", f"no Docker engine answers ({detail})"
    missing = [image for image in IMAGES if not _docker("image", "inspect", image, timeout_s=10)[0]]
    unpullable = [image for image in missing if not _docker("manifest", "inspect", image, timeout_s=15)[0]]
    if unpullable:
        return "local", f"Docker {detail} answers, but {', '.join(unpullable)} can neither be found nor pulled"
    how = "present" if not missing else "present or pullable"
    return "compose", f"Docker {detail} answers and the images are {how}"


def for_settings(settings: Settings, name: str) -> Backend:
    return ComposeBackend(settings) if name == "compose" else LocalBackend(settings)


def recorded(settings: Settings) -> Backend:
    """The backend the state file says is up (local when nothing is recorded)."""
    current = state_file.load(settings.state_path)
    return for_settings(settings, current.backend if current else "local")
