"""Each `make test-<type>` (pytest -m TYPE) collects its own tests, and none collects nothing.

The suite is collected once, in a child pytest, with a small plugin that writes each
test's markers: ``-m TYPE`` selects exactly the tests carrying the TYPE marker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TYPES = re.search(r"^TEST_TYPES := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
PLUGIN = '''
import json, os

def pytest_collection_finish(session):
    with open(os.environ["LAB_MARKERS_OUT"], "w") as out:
        json.dump({item.nodeid: sorted({m.name for m in item.iter_markers()}) for item in session.items}, out)
'''


@pytest.fixture(scope="module")
def markers(tmp_path_factory) -> dict[str, list[str]]:
    where = tmp_path_factory.mktemp("markers")
    (where / "lab_markers_plugin.py").write_text(PLUGIN)
    out = where / "markers.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "lab_markers_plugin",
                           "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(where), "LAB_MARKERS_OUT": str(out)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def _selected(markers: dict[str, list[str]], marker: str) -> list[str]:
    return [node for node, names in markers.items() if marker in names]


@pytest.mark.parametrize("marker", TYPES)
def test_every_test_type_collects_something(markers, marker):
    assert _selected(markers, marker), f"`make test-{marker}` collects no test"


def test_proxy_collects_only_the_proxy_tests(markers):
    outside = [node for node in _selected(markers, "proxy") if not node.startswith("tests/proxy/")]
    assert not outside, f"-m proxy collects {len(outside)} tests outside tests/proxy/, e.g. {outside[:3]}"


def test_performance_collects_only_the_benchmarks(markers):
    outside = [node for node in _selected(markers, "performance") if not node.startswith("tests/performance/")]
    assert not outside, outside[:3]


def test_every_test_has_a_type(markers):
    untyped = [node for node, names in markers.items() if not set(names) & set(TYPES)]
    assert not untyped, f"{len(untyped)} tests no `make test-<type>` runs, e.g. {untyped[:3]}"
