"""Small SVG building blocks for the HTML report: linear and log scales, axes, escaped text.

Everything is drawn server-side as inline SVG, so the report needs no script and no network to view.
"""

from __future__ import annotations

import dataclasses
import html
import math


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclasses.dataclass(frozen=True)
class Linear:
    """Maps [low, high] onto [start_px, end_px] (end_px < start_px for a y axis that grows upwards)."""

    low: float
    high: float
    start_px: float
    end_px: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start_px + (value - self.low) / span * (self.end_px - self.start_px)

    def ticks(self, count: int = 5) -> list[float]:
        span = self.high - self.low
        if span <= 0:
            return [self.low]
        raw = span / count
        step = 10 ** math.floor(math.log10(raw))
        step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
        first = math.ceil(self.low / step) * step
        return [first + i * step for i in range(int((self.high - first) / step) + 1)]


@dataclasses.dataclass(frozen=True)
class Log10:
    """Maps [low, high] (both > 0) logarithmically onto pixels; values below ``low`` sit on ``low``."""

    low: float
    high: float
    start_px: float
    end_px: float

    def __call__(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        span = math.log10(self.high) - math.log10(self.low) or 1.0
        return self.start_px + (math.log10(value) - math.log10(self.low)) / span * (self.end_px - self.start_px)

    def ticks(self) -> list[float]:
        return [10.0 ** e for e in range(math.floor(math.log10(self.low)), math.ceil(math.log10(self.high)) + 1)
                if self.low <= 10.0 ** e <= self.high]


def seconds_label(value_s: float) -> str:
    if value_s < 1.0:
        return f"{value_s * 1000:g} ms"
    return f"{value_s:g} s"


def x_axis(scale: Linear, y_px: float, label: str = "s since the scenario started") -> str:
    parts = [f'<line class="axis" x1="{scale.start_px:.1f}" x2="{scale.end_px:.1f}" y1="{y_px:.1f}" '
             f'y2="{y_px:.1f}"/>']
    for tick in scale.ticks(10):
        x = scale(tick)
        parts.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{y_px:.1f}" y2="{y_px + 4:.1f}"/>'
                     f'<text class="tick-label" x="{x:.1f}" y="{y_px + 15:.1f}" text-anchor="middle">'
                     f'{tick:g}</text>')
    parts.append(f'<text class="axis-label" x="{scale.end_px:.1f}" y="{y_px + 28:.1f}" text-anchor="end">'
                 f'{esc(label)}</text>')
    return "".join(parts)


def y_axis(ticks: list[tuple[float, str]], x_px: float, width_px: float) -> str:
    """Grid lines across ``width_px`` at (pixel, label) ticks."""
    return "".join(f'<line class="grid" x1="{x_px:.1f}" x2="{x_px + width_px:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick-label" x="{x_px - 4:.1f}" y="{y + 3:.1f}" text-anchor="end">{esc(label)}'
                   f'</text>' for y, label in ticks)


def polyline(points: list[tuple[float, float]], css_class: str, colour: str) -> str:
    if not points:
        return ""
    joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline class="{esc(css_class)}" fill="none" stroke="{colour}" points="{joined}"/>'
