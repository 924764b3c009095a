"""Where a memory cap's cgroup goes: beside the process on v1; on v2 under the nearest cgroup whose children get the
memory controller (a service's own cgroup holds processes, so v2 refuses the controller under it)."""

from pathlib import Path

import pytest

from lab.errors import StackError
from lab.stack.limits import capped_group_home

pytestmark = pytest.mark.unit


def _tree(root: Path, controls: dict[str, str]) -> None:
    for rel, control in controls.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / "cgroup.subtree_control").write_text(control)


def test_v1_caps_beside_the_process(tmp_path: Path) -> None:
    parent = tmp_path / "memory" / "user.slice"
    assert capped_group_home("v1", parent, tmp_path) == parent


def test_v2_caps_under_the_process_cgroup_when_its_children_get_memory(tmp_path: Path) -> None:
    _tree(tmp_path, {".": "cpu io memory pids", "lab": "memory"})
    assert capped_group_home("v2", tmp_path / "lab", tmp_path) == tmp_path / "lab"


def test_v2_climbs_past_a_service_cgroup_that_holds_processes(tmp_path: Path) -> None:
    _tree(tmp_path, {".": "cpu io memory pids", "system.slice": "cpu memory pids",
                     "system.slice/runner.service": ""})
    home = capped_group_home("v2", tmp_path / "system.slice" / "runner.service", tmp_path)
    assert home == tmp_path / "system.slice"


def test_v2_without_a_delegated_memory_controller_is_a_clear_error(tmp_path: Path) -> None:
    _tree(tmp_path, {".": "cpu pids", "app": ""})
    with pytest.raises(StackError, match="memory controller"):
        capped_group_home("v2", tmp_path / "app", tmp_path)


def test_v2_never_climbs_above_the_cgroup_root(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _tree(tmp_path, {".": "memory", "cg": "", "cg/app": ""})  # memory above the root must not be used
    with pytest.raises(StackError):
        capped_group_home("v2", root / "app", root)
