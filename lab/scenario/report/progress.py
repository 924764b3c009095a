"""Where a long `lab run` is: scenario k of n, its round, its phase, time elapsed.

On a terminal one status line is rewritten in place (``\\r`` + erase-line) and only each scenario's
verdict stays on screen; anywhere else (CI logs, pipes, files) every step is a plain line of its own,
so a log reads top to bottom with no control characters in it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TextIO

ERASE_LINE = "\r\x1b[2K"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


class Progress:
    def __init__(self, stream: TextIO, total: int, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.total, self.clock = stream, total, clock
        self.tty = stream.isatty() if tty is None else tty
        self.started = clock()
        self.index = 0
        self.label = ""
        self.phase_name = ""
        self.scenario_started = self.started
        self._status_shown = False

    def _line(self, text: str) -> None:
        if self.tty and self._status_shown:
            self.stream.write(ERASE_LINE)
            self._status_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (skips, round summaries)."""
        self._line(text)

    def begin(self, label: str, description: str) -> None:
        self.index += 1
        self.label, self.phase_name, self.scenario_started = label, "", self.clock()
        if self.tty:
            self.tick()
        else:
            self._line(f"== [{self.index} of {self.total}] {label}: {description}")

    def phase(self, name: str) -> None:
        self.phase_name = name
        if self.tty:
            self.tick()
        else:
            self._line(f"   {self.clock() - self.scenario_started:6.2f}s  {name}")

    def tick(self) -> None:
        """Redraw the status line (a terminal only; call it a few times a second)."""
        if not self.tty or not self.label:
            return
        now = self.clock()
        self.stream.write(f"{ERASE_LINE}[{self.index} of {self.total}] {self.label}  {self.phase_name or 'starting'}"
                          f"  {_clock(now - self.scenario_started)}  (total {_clock(now - self.started)})")
        self.stream.flush()
        self._status_shown = True

    def done(self, result: Any) -> None:
        verdict = result.verdict.upper()
        if self.tty:
            self._line(f"{verdict:<8} [{self.index} of {self.total}] {self.label}  {result.duration_s:.1f}s")
        else:
            self._line(f"   {result.duration_s:6.2f}s  verdict: {verdict}")
        self.label = ""
