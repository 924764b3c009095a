"""Running the lab's components unprivileged.

When the lab runs as root, every process it starts (Postgres, Tansu, lab.proxy)
runs as one dedicated system user (LAB_OS_USER, default ``chaoslab``; created
with ``useradd --system`` when missing), never as root: a component that is
broken into, or misused through its own features (Postgres's ``COPY ... FROM
PROGRAM``, the proxy's API), gets that user's rights only. Run as anyone else,
the lab starts its components as itself.

That user must be able to execute what it runs. When it cannot reach a binary
(say a Python under /root), the smallest tree that runs is copied once under
/var/lib/chaoslab, world-readable but owned by root, so the user can run it but
not change it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Callable

from ..config import Settings
from ..errors import PrivilegeError

HOME = Path("/var/lib/chaoslab")
# parts of the standard library a server never imports: left out of the copy
STDLIB_SKIP = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
               "config-*")


def lab_user(settings: Settings) -> str | None:
    """The user components run as: None (ourselves) unless we are root, then a dedicated one."""
    if os.geteuid() != 0:
        return None
    name = settings.os_user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        result: subprocess.CompletedProcess[str] | None
        try:
            result = subprocess.run(
                [settings.useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "--user-group", name], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as err:
            result = None
            detail = str(err)
        else:
            detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        if result is None or result.returncode != 0:
            raise PrivilegeError(
                f"Postgres refuses to run as root and the lab runs none of its components as root, and creating "
                f"the user {name!r} with {settings.useradd} failed: {detail}. Create a non-root user yourself "
                f"(useradd --system {name}) or set LAB_OS_USER (or LAB_PG_OS_USER) to an existing one") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise PrivilegeError(f"LAB_OS_USER={name!r} is root; the lab's components need a non-root user")
    return name


def can(user: str | None, flag: str, path: Path) -> bool:
    """``test FLAG PATH`` as ``user`` (True for ourselves)."""
    if user is None:
        return True
    return subprocess.run(["test", flag, str(path)], user=user, timeout=10).returncode == 0


def _home_for(label: str, source: Path) -> Path:
    version = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    HOME.mkdir(parents=True, exist_ok=True)
    HOME.chmod(0o755)
    return HOME / f"{label}-{version}"


def _open_up(target: Path) -> None:
    """Let everyone read and traverse ``target`` and its parents (it holds only copies of public binaries)."""
    for path in [target, *target.parents]:
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o055)


def _build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """Make ``target`` with ``build(temp)`` in a sibling temp directory, then rename it into place.

    Two labs racing (say two clones on one host) never see a half-copied tree:
    the loser of the rename discards its copy and uses the winner's.
    """
    if target.exists():
        return target
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(temp)
        temp.chmod(0o755)
        try:
            os.rename(temp, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def reachable_tree(install: Path, probe: Path, user: str | None, label: str) -> Path:
    """``install``, or a copy of it under /var/lib/chaoslab if ``user`` cannot execute ``probe`` inside it."""
    if can(user, "-x", probe):
        return install
    target = _build_once(_home_for(label, install),
                         lambda temp: shutil.copytree(install, temp, dirs_exist_ok=True, symlinks=True))
    _open_up(target)
    return target


def reachable_file(path: Path, user: str | None, label: str) -> Path:
    """An executable ``path``, or a copy under /var/lib/chaoslab if ``user`` cannot execute it."""
    if can(user, "-x", path):
        return path
    directory = _home_for(label, path)
    if (directory / path.name).exists() and (directory / path.name).stat().st_size != path.stat().st_size:
        shutil.rmtree(directory)  # the original changed: copy it again
    target = _build_once(directory, lambda temp: shutil.copy2(path, temp / path.name)) / path.name
    target.chmod(0o755)
    _open_up(target.parent)
    return target


def python_for(user: str | None, package_root: Path) -> tuple[str, dict[str, str], Path]:
    """(interpreter, extra environment, working directory) that ``user`` can run ``python -m lab.…`` with.

    Ourselves, or a user who can reach this interpreter and the lab's source:
    ``sys.executable`` in ``package_root``. Otherwise a copy of the interpreter
    and its standard library (no site-packages: lab.proxy needs only the standard
    library; uvloop is used if the user can read this environment's site-packages)
    and, if needed, of the ``lab`` package.
    """
    env: dict[str, str] = {}
    executable = Path(sys.executable)
    if not (can(user, "-x", executable) and can(user, "-r", Path(sysconfig.get_paths()["stdlib"]) / "os.py")):
        executable, env = _copied_python(user)
    site = Path(sysconfig.get_paths()["purelib"])
    if user is not None and executable != Path(sys.executable) and can(user, "-r", site):
        env["PYTHONPATH"] = str(site)
    if not can(user, "-r", package_root / "lab" / "__init__.py"):
        package_root = _copied_package(package_root)
    return str(executable), env, package_root


def _copied_python(user: str | None) -> tuple[Path, dict[str, str]]:
    real = Path(os.path.realpath(sys.executable))
    base = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths()["stdlib"])

    def build(temp: Path) -> None:
        (temp / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, temp / "bin" / real.name)
        libdir = Path(sysconfig.get_config_var("LIBDIR") or base / "lib")
        soname = sysconfig.get_config_var("INSTSONAME")
        if sysconfig.get_config_var("Py_ENABLE_SHARED") and soname and (libdir / soname).exists():
            (temp / "lib").mkdir(exist_ok=True)
            shutil.copy2(libdir / soname, temp / "lib" / soname)
        shutil.copytree(stdlib, temp / stdlib.relative_to(base), dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns(*STDLIB_SKIP))

    target = _build_once(_home_for("python", real), build)
    _open_up(target)
    executable = target / "bin" / real.name
    if not can(user, "-x", executable):
        raise PrivilegeError(f"the user {user!r} cannot execute {executable}, a copy of this Python; "
                             f"check the permissions of {HOME}")
    return executable, {"LD_LIBRARY_PATH": str(target / "lib"), "PYTHONHOME": str(target)}


def _copied_package(package_root: Path) -> Path:
    """A fresh copy of the ``lab`` package (it changes with the code, so it is copied at every start)."""
    target = _home_for("source", package_root)
    target.mkdir(mode=0o755, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".lab.", dir=target))
    shutil.copytree(package_root / "lab", fresh / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [fresh, *fresh.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o055 if path.is_dir() else 0o044))
    old = target / f".old.{os.getpid()}"
    if (target / "lab").exists():
        os.rename(target / "lab", old)
    os.rename(fresh / "lab", target / "lab")
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(fresh, ignore_errors=True)
    _open_up(target / "lab")
    return target


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a component: ours without the Postgres password, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "LAB_PG_PASSWORD"}
    env.update(extra or {})
    return env
