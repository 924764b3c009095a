"""compose/toxiproxy/build.sh refuses a wrong SOURCE with a message naming it, before it installs anything.

The build itself (Debian's Go, minutes of compiling) is a developer's tool and is not run here; what is
pinned is that bad input fails at once and says what was wrong, never reaching apt-get or the compiler.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "compose" / "toxiproxy" / "build.sh"


def _build(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *argv], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})


def test_no_source_prints_the_usage():
    done = _build()
    assert done.returncode == 1 and "usage: build.sh" in done.stderr, done.stderr


def test_an_unknown_option_is_named():
    done = _build("--fast", "/tmp")
    assert done.returncode == 1 and "unknown option --fast" in done.stderr, done.stderr


def test_a_missing_source_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    done = _build(str(missing), str(tmp_path / "out"))
    assert done.returncode == 1 and f"SOURCE {missing} does not exist" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_a_directory_without_the_source_is_refused(tmp_path):
    done = _build(str(tmp_path), str(tmp_path / "out"))
    assert done.returncode == 1 and "neither a source tree" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_another_go_module_is_refused_before_anything_is_installed(tmp_path):
    (tmp_path / "go.mod").write_text("module example.com/not/toxiproxy\n\ngo 1.19\n")
    done = _build(str(tmp_path), str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    assert "go.mod does not name module github.com/Shopify/toxiproxy/v2" in done.stderr, done.stderr
    assert "apt-get" not in done.stderr and not (tmp_path / "out").exists()
