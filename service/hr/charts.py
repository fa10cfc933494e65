"""Charts as inline SVG, drawn on the server from figures the stored table published; each says in words what it
shows (``role="img"`` with a title), and the pages add the figures as a table beside it.

Colours come from ColorBrewer's PuOr scheme, which stays distinct for the common kinds of colour blindness;
segments are separated by white gaps so that neighbours never rely on hue alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Diverging, from the lowest answer to the highest (ColorBrewer PuOr, orange to purple).
DIVERGING: dict[int, tuple[str, ...]] = {
    5: ("#b35806", "#f1a340", "#f7f7f7", "#998ec3", "#542788"),
    7: ("#b35806", "#f1a340", "#fee0b6", "#f7f7f7", "#d8daeb", "#998ec3", "#542788"),
}
DETRACTOR, PASSIVE, PROMOTER = "#f1a340", "#d9d9d9", "#998ec3"
INK, MUTED, LINE, ACCENT = "#1b1f24", "#4a5360", "#6b7684", "#0b5cad"


def point_colours(points: int) -> tuple[str, ...]:
    """A colour per answer point: diverging for agreement scales, three groups for 0-10 (eNPS)."""
    if points in DIVERGING:
        return DIVERGING[points]
    if points == 11:
        return (DETRACTOR,) * 7 + (PASSIVE,) * 2 + (PROMOTER,) * 2
    return (ACCENT,) * points


def _svg(width: int, height: int, title: str, body: str, css: str) -> Markup:
    # Every text in ``body`` and ``title`` is escaped here or where it is made; the rest is numbers and colours.
    return Markup(  # noqa: S704
        f'<svg class="{css}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'focusable="false" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def stacked_bar(counts: Sequence[int], colours: Sequence[str], title: str) -> Markup:
    """One bar split by answer: each segment's width is its share of the answers."""
    width, height = 300, 20
    total = sum(counts)
    parts, x = [], 0.0
    for count, colour in zip(counts, colours, strict=True):
        if total == 0 or count == 0:
            continue
        w = width * count / total
        parts.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" fill="{colour}" stroke="#ffffff" '
            'stroke-width="1"/>'
        )
        x += w
    if not parts:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="none" stroke="{LINE}"/>')
    return _svg(width, height, title, "".join(parts), "chart chart-bar")


def share_bar(share: float, title: str) -> Markup:
    """A horizontal bar of a share (0..1) against a light track."""
    width, height = 200, 14
    filled = max(0.0, min(1.0, share)) * width
    body = (
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eef1f5"/>'
        f'<rect x="0" y="0" width="{filled:.2f}" height="{height}" fill="{ACCENT}"/>'
    )
    return _svg(width, height, title, body, "chart chart-share")


@dataclass(frozen=True)
class Scale:
    low: float
    high: float

    def x(self, value: float, left: float, width: float) -> float:
        return left + width * (value - self.low) / (self.high - self.low)


def interval(
    mean: float, low: float | None, high: float | None, reference: float | None, scale: Scale, title: str
) -> Markup:
    """The mean as a dot on the construct's scale, its interval as a bar, the organisation's mean as a tick."""
    width, height, left, span = 300, 46, 10.0, 280.0
    parts = [f'<line x1="{left}" y1="17" x2="{left + span}" y2="17" stroke="{LINE}" stroke-width="1"/>']
    for tick in range(int(scale.low), int(scale.high) + 1):
        x = scale.x(tick, left, span)
        parts.append(f'<line x1="{x:.2f}" y1="13" x2="{x:.2f}" y2="21" stroke="{LINE}" stroke-width="1"/>')
        parts.append(f'<text x="{x:.2f}" y="42" text-anchor="middle" font-size="11" fill="{MUTED}">{tick}</text>')
    if low is not None and high is not None:
        x1, x2 = scale.x(low, left, span), scale.x(high, left, span)
        parts.append(f'<rect x="{x1:.2f}" y="12" width="{max(x2 - x1, 1):.2f}" height="10" fill="#c6d7ec"/>')
    if reference is not None:
        x = scale.x(reference, left, span)
        parts.append(f'<line x1="{x:.2f}" y1="4" x2="{x:.2f}" y2="30" stroke="{INK}" stroke-width="2" '
                     'stroke-dasharray="3 2"/>')  # fmt: skip
    parts.append(f'<circle cx="{scale.x(mean, left, span):.2f}" cy="17" r="6" fill="{ACCENT}" stroke="#ffffff"/>')
    return _svg(width, height, title, "".join(parts), "chart chart-interval")


def trend(values: Sequence[float | None], scale: Scale, labels: Sequence[str], title: str) -> Markup:
    """A small line chart of a construct's mean per wave (oldest first); a hidden wave is a gap in the line."""
    width, height, left, top, span_x, span_y = 300, 120, 34.0, 10.0, 250.0, 80.0
    count = len(values)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (span_x * i / (count - 1) if count > 1 else span_x / 2)
        y = top + span_y * (scale.high - v) / (scale.high - scale.low)
        return x, y

    parts = []
    for tick in (scale.low, (scale.low + scale.high) / 2, scale.high):
        _x, y = xy(0, tick)
        parts.append(f'<line x1="{left}" y1="{y:.2f}" x2="{left + span_x}" y2="{y:.2f}" stroke="#d5dae1"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.2f}" text-anchor="end" font-size="11" fill="{MUTED}">{tick:g}</text>'
        )
    run: list[str] = []
    for i, v in enumerate([*values, None]):
        if v is not None:
            run.append("{:.2f},{:.2f}".format(*xy(i, v)))
            continue
        if len(run) > 1:
            parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
        run = []
    for i, v in enumerate(values):
        x = xy(i, scale.low)[0]
        if v is None:
            parts.append(f'<text x="{x:.2f}" y="{top + span_y / 2:.2f}" text-anchor="middle" font-size="12" '
                         f'fill="{MUTED}">×</text>')  # fmt: skip
        else:
            cx, cy = xy(i, v)
            parts.append(f'<circle cx="{cx:.2f}" cy="{cy:.2f}" r="4" fill="{ACCENT}"/>')
        label = escape(labels[i][:14])
        parts.append(f'<text x="{x:.2f}" y="{height - 8}" text-anchor="middle" font-size="10" '
                     f'fill="{MUTED}">{label}</text>')  # fmt: skip
    return _svg(width, height, title, "".join(parts), "chart chart-trend")
