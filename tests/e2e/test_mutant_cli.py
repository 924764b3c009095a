"""`lab run --mutant/--mutants` refuse bad input before touching anything, naming what was wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..labenv import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("argv", "message"), [
    (["network_partition", "--mutant", "nope"], "unknown mutant 'nope'; available: breaker_threshold_exclusive"),
    (["network_partition", "--mutants"], "--mutants runs the whole matrix"),
    (["network_partition", "--mutant", "half_open_skipped", "--negative-control"], "each name the target"),
])
def test_bad_mutant_arguments_are_usage_errors(argv, message):
    done = subprocess.run([sys.executable, "-m", "lab", "run", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and message in done.stderr, (done.returncode, done.stderr)
