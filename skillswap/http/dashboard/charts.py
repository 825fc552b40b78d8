"""Charts drawn on the server as SVG from the statistics' numbers: no script, no CDN.

Colours and fonts come from the stylesheet (classes only: the page's CSP allows no inline
style). The markup is built from numbers and escaped text only. Every chart names itself in a
<title> (what a screen reader says) and each bar or dot carries its own, with the value as the
reader writes it. Time runs left to right in both languages, as in print: the SVG is not
mirrored for Arabic, only its text is shaped.

Values may be negative (an adjustment takes points away): the axis is then drawn at zero with
bars hanging below it, never a negative height, which browsers report as an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 360, 170
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 16, 24, 8
LEGEND_HEIGHT = 14

Format = Callable[[float], str]


def _plain(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Series:
    """One named line of a chart: a value per label (None where there is nothing to say)."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class _Frame:
    """Where zero and the top are on the plot, for values between `low` and `high`."""

    low: float
    high: float
    top: float  # y of `high`
    bottom: float  # y of `low`

    @classmethod
    def of(cls, values: Sequence[float], *, top: float, bottom: float) -> _Frame:
        low = min(0.0, *values) if values else 0.0
        high = max(0.0, *values) if values else 0.0
        if high == low:
            high = low + 1
        return cls(low, high, top, bottom)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.low) * (self.bottom - self.top) / (self.high - self.low)


def bar_chart(points: Sequence[tuple[str, float]], *, title: str, fmt: Format = _plain) -> Markup:
    """Bars for (label, value) pairs, left to right in time."""
    frame = _Frame.of([v for _, v in points], top=MARGIN_TOP, bottom=HEIGHT - MARGIN_BOTTOM)
    slot = (WIDTH - 2 * MARGIN_SIDE) / max(len(points), 1)
    zero = frame.y(0)
    parts = [_open(title, HEIGHT), _axis(zero), _top_label(frame, fmt)]
    for index, (label, value) in enumerate(points):
        y = frame.y(value)
        x = MARGIN_SIDE + index * slot + slot * 0.15
        parts.append(
            f'<rect class="bar{" negative" if value < 0 else ""}" x="{x:.1f}" '
            f'y="{min(y, zero):.1f}" width="{slot * 0.7:.1f}" height="{abs(zero - y):.1f}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
    parts += _axis_labels([label for label, _ in points], slot, HEIGHT)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(points: Sequence[tuple[str, float]], *, title: str, fmt: Format = _plain) -> Markup:
    """A line through (label, value) pairs, with a dot on each."""
    labels = [label for label, _ in points]
    return lines_chart(labels, [Series(title, [v for _, v in points])], title=title, fmt=fmt)


def lines_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Format = _plain,
    high: float | None = None,
) -> Markup:
    """One line per series over the same labels, with a legend when there are several; a
    missing value (None) breaks its line. `high` fixes the top of the scale (1 for a rate)."""
    legend = len(series) > 1
    height = HEIGHT + (LEGEND_HEIGHT if legend else 0)
    known = [v for s in series for v in s.values if v is not None]
    frame = _Frame.of(
        [*known, *([high] if high is not None else [])],
        top=MARGIN_TOP + (LEGEND_HEIGHT if legend else 0),
        bottom=height - MARGIN_BOTTOM,
    )
    slot = (WIDTH - 2 * MARGIN_SIDE) / max(len(labels), 1)
    parts = [_open(title, height), _axis(frame.y(0)), _top_label(frame, fmt)]
    for number, line in enumerate(series):
        kind = f"series-{number % 4}"
        runs: list[list[tuple[float, float]]] = [[]]
        for index, value in enumerate(line.values):
            if value is None:
                runs.append([])
                continue
            x, y = MARGIN_SIDE + slot * (index + 0.5), frame.y(value)
            runs[-1].append((x, y))
            name = f"{line.name} · " if legend else ""
            parts.append(
                f'<circle class="dot {kind}" cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>'
                f"{escape(name)}{escape(labels[index])}: {escape(fmt(value))}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline class="line {kind}" points="{path}"/>')
    if legend:
        parts += _legend([s.name for s in series])
    parts += _axis_labels(labels, slot, height)
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" direction="ltr"><title>{escape(title)}</title>'
    )


def _axis(y: float) -> str:
    return (
        f'<line class="axis" x1="{MARGIN_SIDE}" y1="{y:.1f}" x2="{WIDTH - MARGIN_SIDE}" '
        f'y2="{y:.1f}"/>'
    )


def _top_label(frame: _Frame, fmt: Format) -> str:
    """The scale's top value, in the corner (the reader's formatting)."""
    return (
        f'<text class="scale" x="{MARGIN_SIDE}" y="{frame.top - 4:.1f}">'
        f"{escape(fmt(frame.high))}</text>"
    )


def _legend(names: Sequence[str]) -> list[str]:
    """A key per series along the top, each in its series' colour."""
    parts = []
    step = (WIDTH - 2 * MARGIN_SIDE) / len(names)
    for number, name in enumerate(names):
        x = MARGIN_SIDE + number * step
        parts.append(
            f'<rect class="key series-{number % 4}" x="{x:.1f}" y="2" width="10" height="10"/>'
            f'<text x="{x + 14:.1f}" y="11">{escape(name)}</text>'
        )
    return parts


def _axis_labels(labels: Sequence[str], slot: float, height: int) -> list[str]:
    """The first, middle and last labels under the axis (all of them would not fit)."""
    if not labels:
        return []
    shown = sorted({0, len(labels) // 2, len(labels) - 1})
    return [
        f'<text x="{MARGIN_SIDE + slot * (i + 0.5):.1f}" y="{height - 8}" '
        f'text-anchor="middle">{escape(labels[i])}</text>'
        for i in shown
    ]
