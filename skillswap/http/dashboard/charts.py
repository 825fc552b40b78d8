"""Charts drawn on the server as SVG from the statistics' numbers: no script, no CDN.

Colours and fonts come from the stylesheet (classes only: the page's CSP allows no inline
style). The markup is built from numbers and escaped labels only.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 360, 160
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 12, 24, 8


def _scale(values: Sequence[float]) -> float:
    top = max(values, default=0)
    return top if top > 0 else 1


def bar_chart(points: Sequence[tuple[str, float]], *, title: str) -> Markup:
    """Bars for (label, value) pairs, left to right in time (SVG is not mirrored in RTL)."""
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top = _scale([v for _, v in points])
    count = max(len(points), 1)
    slot = (WIDTH - 2 * MARGIN_SIDE) / count
    parts = [_open(title)]
    for index, (label, value) in enumerate(points):
        h = plot_h * value / top
        x = MARGIN_SIDE + index * slot + slot * 0.15
        y = MARGIN_TOP + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}"><title>{escape(label)}: {value:g}</title></rect>'
        )
    parts += _axis_labels(points, slot)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(points: Sequence[tuple[str, float]], *, title: str) -> Markup:
    """A line through (label, value) pairs, with a dot on each."""
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top = _scale([v for _, v in points])
    count = max(len(points), 1)
    slot = (WIDTH - 2 * MARGIN_SIDE) / count
    coords = [
        (MARGIN_SIDE + slot * (i + 0.5), MARGIN_TOP + plot_h - plot_h * v / top)
        for i, (_, v) in enumerate(points)
    ]
    parts = [_open(title)]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline class="line" points="{path}"/>')
    for (x, y), (label, value) in zip(coords, points, strict=True):
        parts.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
            f"<title>{escape(label)}: {value:g}</title></circle>"
        )
    parts += _axis_labels(points, slot)
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str) -> str:
    base = HEIGHT - MARGIN_BOTTOM
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" direction="ltr"><title>{escape(title)}</title>'
        f'<line class="axis" x1="{MARGIN_SIDE}" y1="{base}" x2="{WIDTH - MARGIN_SIDE}" '
        f'y2="{base}"/>'
    )


def _axis_labels(points: Sequence[tuple[str, float]], slot: float) -> list[str]:
    """The first, middle and last labels under the axis (all of them would not fit)."""
    if not points:
        return []
    shown = sorted({0, len(points) // 2, len(points) - 1})
    return [
        f'<text x="{MARGIN_SIDE + slot * (i + 0.5):.1f}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">{escape(points[i][0])}</text>'
        for i in shown
    ]
