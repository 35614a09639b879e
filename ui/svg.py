"""A line chart drawn as inline SVG, with its axis titles and legend as plain text.

Inline SVG renders the same in every browser with no script, reads as text to a test, and
keeps every label whole: the legend is HTML beside the plot, so long names wrap, not clip.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 460, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 12, 44
# Tableau 10: distinct for the common kinds of colour blindness, and readable on white.
COLOURS: tuple[str, ...] = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f")
COLOURS += ("#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
# Past ten lines the colours come round again, each time with another dash, so a chart of
# 30 classes does not draw classes 1, 11 and 21 alike; ten or fewer stay solid.
DASHES: tuple[str, ...] = ("", "8 3", "2 3", "8 3 2 3")
# The dash of a Series marked dashed (a holdout loss) while the colours go first time round.
DASHED = "6 4"
# Markers make a curve of a few points (a solver's last iteration) visible at all.
MARKERS_UP_TO = 20


@dataclass(frozen=True)
class Series:
    """One line: its legend label and its points; None values are gaps, not zeros."""

    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    dashed: bool = False

    def points(self) -> list[tuple[float, float]]:
        """The drawable points: both coordinates present and finite."""
        return [
            (float(a), float(b))
            for a, b in zip(self.x, self.y, strict=False)
            if b is not None and math.isfinite(a) and math.isfinite(b)
        ]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def line_chart(
    chart: str,
    title: str,
    series: Sequence[Series],
    x_title: str,
    y_title: str,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
) -> str:
    """A titled chart of lines with both axes titled and a legend; `chart` names it for tests.

    Fixed ranges (x_range, y_range) suit rates in [0, 1]; otherwise the data set them.
    `diagonal` draws the chance line of a ROC chart.
    """
    drawn = [(s, s.points()) for s in series]
    everything = [p for _, points in drawn for p in points]
    total = len(everything)
    head = (
        f'<figure class="chart" data-chart="{chart}" data-series="{len(series)}" '
        f'data-points="{total}"><figcaption class="chart-title">{html.escape(title)}</figcaption>'
    )
    if not everything:
        return head + '<p class="chart-empty">No points yet.</p></figure>'
    xs = nice_ticks(*(x_range or (min(p[0] for p in everything), max(p[0] for p in everything))))
    ys = nice_ticks(*(y_range or (min(p[1] for p in everything), max(p[1] for p in everything))))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * (x - xs[0]) / ((xs[-1] - xs[0]) or 1.0)

    def sy(y: float) -> float:
        return TOP + plot_h * (1 - (y - ys[0]) / ((ys[-1] - ys[0]) or 1.0))

    parts = [
        f'<svg class="chart-plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for x in xs:
        parts.append(
            f'<line class="grid" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{TOP}" '
            f'y2="{TOP + plot_h}"/><text class="tick" x="{sx(x):.1f}" y="{TOP + plot_h + 16}" '
            f'text-anchor="middle">{_label(x)}</text>'
        )
    for y in ys:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(y):.1f}" '
            f'y2="{sy(y):.1f}"/><text class="tick" x="{LEFT - 6}" y="{sy(y) + 4:.1f}" '
            f'text-anchor="end">{_label(y)}</text>'
        )
    if diagonal:
        parts.append(
            f'<line class="chance" x1="{sx(xs[0]):.1f}" y1="{sy(ys[0]):.1f}" '
            f'x2="{sx(xs[-1]):.1f}" y2="{sy(ys[-1]):.1f}"/>'
        )
    legend = []
    for index, (line, points) in enumerate(drawn):
        colour = COLOURS[index % len(COLOURS)]
        pattern = DASHES[index // len(COLOURS) % len(DASHES)] or (DASHED if line.dashed else "")
        coordinates = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        dash = f' stroke-dasharray="{pattern}"' if pattern else ""
        parts.append(
            f'<polyline class="line" data-label="{html.escape(line.label)}" '
            f'data-points="{len(points)}" points="{coordinates}" stroke="{colour}"{dash}/>'
        )
        if len(points) <= MARKERS_UP_TO:
            parts += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>'
                for x, y in points
            ]
        legend.append(f"<li>{_swatch(colour, dash)}{html.escape(line.label)}</li>")
    parts.append(
        f'<text class="axis-title" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{html.escape(x_title)}</text>'
        f'<text class="axis-title" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_title)}</text></svg>'
    )
    return head + "".join(parts) + f'<ul class="chart-legend">{"".join(legend)}</ul></figure>'


def _swatch(colour: str, dash: str) -> str:
    """A legend's key to a line: a square of its colour, or a stretch of it when dashed,
    since a square of one colour cannot tell two lines of that colour apart."""
    if not dash:
        return f'<span class="swatch" style="background: {colour}"></span>'
    return (
        '<span class="swatch-line"><svg width="24" height="12" aria-hidden="true">'
        f'<line x1="0" y1="6" x2="24" y2="6" stroke="{colour}" stroke-width="2"{dash}/>'
        "</svg></span>"
    )


def note(chart: str, title: str, text: str) -> str:
    """A chart's place when there is nothing to draw, saying why."""
    return (
        f'<figure class="chart" data-chart="{chart}" data-series="0" data-points="0">'
        f'<figcaption class="chart-title">{html.escape(title)}</figcaption>'
        f'<p class="chart-note">{html.escape(text)}</p></figure>'
    )
