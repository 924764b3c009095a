"""`lab run --target FILE.toml` as a user types it: a bad target file exits 2 before anything runs, naming the
file, the section and the key (no stack is needed to find out)."""

from __future__ import annotations

import pytest

from ..labenv import LabEnv

pytestmark = pytest.mark.e2e


def test_a_bad_target_file_is_a_usage_error_naming_the_key(tmp_path):
    path = tmp_path / "orders.toml"
    path.write_text('[request]\nurl = "http://127.0.0.1:9/orders"\n[load]\nusers = 0\n')
    result = LabEnv(tmp_path / "lab").run("run", "blackhole", "--target", str(path), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"target file {path}: [load] users: must be a whole number >= 1, not 0" in result.stderr


def test_a_missing_target_file_is_a_usage_error(tmp_path):
    result = LabEnv(tmp_path / "lab").run("run", "blackhole", "--target", str(tmp_path / "nope.toml"), check=False)
    assert result.returncode == 2 and "nope.toml: cannot be read" in result.stderr, result.stdout + result.stderr
