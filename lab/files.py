"""Private, whole files: what the lab writes about itself (state, ledger, logs, the Postgres password).

Guaranteed: directories made here are 0700 and files 0600 (the lab runs on
shared hosts, and these files hold pids, undo data and a password); a file
written with ``write_private`` is either the old one or the new one, never half
of either, even across a crash or power loss (temp file in the same directory,
fsync, rename, fsync of the directory). Any OS error becomes a ``StateError``
naming the path and what went wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StateError

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700 if it is ours."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if path.stat().st_uid == os.geteuid():
            path.chmod(DIR_MODE)
    except OSError as err:
        raise StateError(f"cannot create the directory {path}: {err.strerror or err}") from None
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably with ``data``, mode 0600."""
    private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        fsync_dir(path.parent)
    except OSError as err:
        try:
            temp.unlink()
        except OSError:
            pass
        raise StateError(f"cannot write {path}: {err.strerror or err}") from None


def create_private(path: Path, data: bytes) -> bool:
    """Write ``path`` once: True if this call created it, False if it already existed (then untouched).

    Two processes racing to create it both end up reading the same content.
    """
    private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # unlike rename, never replaces what another process made first
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    except OSError as err:
        raise StateError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        try:
            temp.unlink()
        except OSError:
            pass


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_log(path: Path) -> Path:
    """A log file the lab appends to: 0600, in a 0700 directory."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
    except OSError as err:
        raise StateError(f"cannot write the log {path}: {err.strerror or err}") from None
    return path
