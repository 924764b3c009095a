"""Progress of a long `lab run`: a status line rewritten in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from lab.scenario.report.progress import ERASE_LINE, Progress

pytestmark = pytest.mark.unit


def _drive(tty: bool) -> str:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, total=2, tty=tty, clock=lambda: now[0])
    progress.begin("network_partition [round 1 of 2]", "cut off")
    now[0] = 1.5
    progress.phase("fault")
    now[0] = 2.0
    progress.tick()
    now[0] = 75.0
    progress.done(SimpleNamespace(verdict="pass", duration_s=5.0))
    now[0] = 80.0
    progress.begin("network_partition [round 2 of 2]", "cut off")
    progress.phase("baseline")
    return stream.getvalue()


def test_on_a_terminal_one_status_line_is_rewritten_and_verdicts_stay():
    out = _drive(tty=True)
    assert ERASE_LINE in out
    status_lines = [chunk for chunk in out.split(ERASE_LINE) if chunk.startswith("[")]
    assert "[1 of 2] network_partition [round 1 of 2]  fault  2.0s  (total 2.0s)" in status_lines
    assert "[2 of 2] network_partition [round 2 of 2]  baseline  0.0s  (total 1m20s)" in status_lines
    assert "PASS     [1 of 2] network_partition [round 1 of 2]  5.0s\n" in out
    assert out.count("\n") == 1  # only the verdict stays on screen


def test_elsewhere_every_step_is_a_plain_line():
    out = _drive(tty=False)
    assert "\r" not in out and "\x1b" not in out
    assert out.splitlines() == ["== [1 of 2] network_partition [round 1 of 2]: cut off", "     1.50s  fault",
                                "     5.00s  verdict: PASS", "== [2 of 2] network_partition [round 2 of 2]: cut off",
                                "     0.00s  baseline"]
