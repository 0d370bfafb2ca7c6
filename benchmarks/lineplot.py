"""Small line charts drawn with OpenCV (no plotting library needed): axes, ticks, a
legend, solid or dashed series, optional log scale. Images are RGB uint8."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

# colour-blind-safe palette (Okabe-Ito), RGB
COLORS = {
    "blue": (0, 114, 178),
    "orange": (230, 159, 0),
    "green": (0, 158, 115),
    "red": (213, 94, 0),
    "purple": (204, 121, 167),
    "grey": (120, 120, 120),
    "black": (0, 0, 0),
    "sky": (86, 180, 233),
}
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


@dataclasses.dataclass
class Series:
    """One line: points ``(xs, ys)``; ``dashed`` for reference levels; ``markers`` for
    a dot on every point."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str = "blue"
    dashed: bool = False
    markers: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values in [lo, hi], about ``count`` of them (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / (count + 1)  # the smallest round step giving at most count + 1 gaps
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (660, 440),
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
    legend: str = "upper right",
) -> np.ndarray:
    """A chart of ``series`` as an (H, W, 3) uint8 RGB image of ``size`` (width, height);
    ``legend``: "upper right" or "lower right" (inside the plot)."""
    import cv2

    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 28, 34, 50
    pw, ph = width - left - right, height - top - bottom
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True) if math.isfinite(y)]
    if not pts:
        raise ValueError(f"chart {title!r} has no finite points")
    if legend not in ("upper right", "lower right"):
        raise ValueError(f"legend must be 'upper right' or 'lower right', got {legend!r}")
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    if y_range is not None:
        y0, y1 = y_range
    elif log_y:
        y0, y1 = min(y for y in ys if y > 0), max(ys)
    else:
        y0, y1 = min(ys), max(ys)
        pad = 0.05 * (y1 - y0 or 1.0)
        y0, y1 = y0 - pad, y1 + pad
    if log_y:
        ty = lambda y: math.log10(max(y, 1e-12))  # noqa: E731
        y0, y1 = ty(y0) - 0.03, ty(y1) + 0.03
    else:
        ty = lambda y: y  # noqa: E731
    if y1 == y0:
        y1 = y0 + 1

    def px(x: float, y: float) -> tuple[int, int]:
        u = left + (x - x0) / (x1 - x0) * pw
        v = top + (1 - (ty(y) - y0) / (y1 - y0)) * ph
        return int(round(u)), int(round(v))

    black, grey = (0, 0, 0), (225, 225, 225)
    # grid and ticks
    if log_y:
        yticks = [10**e * m for e in range(math.floor(y0), math.ceil(y1) + 1) for m in (1, 2, 5)]
        yticks = [t for t in yticks if y0 <= math.log10(t) <= y1]
        if len(yticks) < 3:  # less than a decade: round values on a linear grid
            yticks = [t for t in nice_ticks(10**y0, 10**y1) if t > 0 and y0 <= math.log10(t)]
    else:
        yticks = nice_ticks(y0, y1)
    for t in yticks:
        _, v = px(x0, t)
        cv2.line(img, (left, v), (left + pw, v), grey, 1)
        label = _fmt(t)
        (tw, th), _ = cv2.getTextSize(label, _FONT, 0.4, 1)
        cv2.putText(img, label, (left - tw - 6, v + th // 2), _FONT, 0.4, black, 1, cv2.LINE_AA)
    for t in nice_ticks(x0, x1, 6):
        u, _ = px(t, yticks[0] if yticks else 1.0)
        cv2.line(img, (u, top), (u, top + ph), grey, 1)
        label = _fmt(t)
        (tw, th), _ = cv2.getTextSize(label, _FONT, 0.4, 1)
        cv2.putText(img, label, (u - tw // 2, top + ph + th + 6), _FONT, 0.4, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), black, 1)
    # series
    for s in series:
        color = COLORS.get(s.color, COLORS["blue"])
        points = [px(x, y) for x, y in zip(s.xs, s.ys, strict=True) if math.isfinite(y)]
        for a, b in zip(points, points[1:], strict=False):
            if s.dashed:
                _dashed(img, a, b, color)
            else:
                cv2.line(img, a, b, color, 2, cv2.LINE_AA)
        if s.markers or len(points) == 1:
            for p in points:
                cv2.circle(img, p, 3, color, -1, cv2.LINE_AA)
    # labels
    (tw, _), _ = cv2.getTextSize(title, _FONT, 0.5, 1)
    cv2.putText(img, title, ((width - tw) // 2, 20), _FONT, 0.5, black, 1, cv2.LINE_AA)
    (tw, _), _ = cv2.getTextSize(xlabel, _FONT, 0.45, 1)
    cv2.putText(img, xlabel, (left + (pw - tw) // 2, height - 10), _FONT, 0.45, black, 1)
    ylab = np.full((20, ph, 3), 255, np.uint8)
    (tw, _), _ = cv2.getTextSize(ylabel, _FONT, 0.45, 1)
    cv2.putText(ylab, ylabel, (max((ph - tw) // 2, 0), 15), _FONT, 0.45, black, 1, cv2.LINE_AA)
    img[top : top + ph, 4:24] = np.rot90(ylab)
    # legend, top right inside the plot
    rows = [s for s in series if s.label]
    if rows:
        widths = [cv2.getTextSize(s.label, _FONT, 0.4, 1)[0][0] for s in rows]
        box_w, box_h = max(widths) + 40, 16 * len(rows) + 8
        bx = left + pw - box_w - 6
        by = top + 6 if legend == "upper right" else top + ph - box_h - 6
        cv2.rectangle(img, (bx, by), (bx + box_w, by + box_h), (255, 255, 255), -1)
        cv2.rectangle(img, (bx, by), (bx + box_w, by + box_h), grey, 1)
        for i, s in enumerate(rows):
            y = by + 14 + 16 * i
            color = COLORS.get(s.color, COLORS["blue"])
            if s.dashed:
                _dashed(img, (bx + 6, y - 4), (bx + 30, y - 4), color)
            else:
                cv2.line(img, (bx + 6, y - 4), (bx + 30, y - 4), color, 2, cv2.LINE_AA)
            cv2.putText(img, s.label, (bx + 35, y), _FONT, 0.4, black, 1, cv2.LINE_AA)
    return img


def _dashed(img: np.ndarray, a: tuple[int, int], b: tuple[int, int], color, dash: int = 7):
    import cv2

    length = math.hypot(b[0] - a[0], b[1] - a[1])
    n = max(int(length // dash), 1)
    for i in range(0, n, 2):
        p = (a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n)
        q = (a[0] + (b[0] - a[0]) * min(i + 1, n) / n, a[1] + (b[1] - a[1]) * min(i + 1, n) / n)
        cv2.line(img, tuple(map(round, p)), tuple(map(round, q)), color, 2, cv2.LINE_AA)


def grid(charts: Sequence[np.ndarray], cols: int = 2) -> np.ndarray:
    """Charts of equal size tiled ``cols`` to a row (empty cells white)."""
    h, w, _ = charts[0].shape
    rows = -(-len(charts) // cols)
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, chart in enumerate(charts):
        r, c = divmod(i, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = chart
    return out
