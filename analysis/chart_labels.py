"""Where the names of a Pareto chart's points go: each name beside its point, placed in pixel space so it overlaps
other names, markers and the skyline line as little as possible; names of near-identical points are given once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_LABEL_CHAR_PX = 5.8  # mean width of a character of the 10 px label font
_MARKER_RADIUS_PX = 5.0  # half the size of a point's marker (mark size 75 px^2)
# a label's baseline offsets from its point, in px: just above / below it, then one line further out; its box spans
# 9 px above the baseline to 2 px below
LABEL_DYS = (-8.0, 9.0, -19.0, 20.0)
_LABEL_ASCENT, _LABEL_DESCENT = 9.0, 2.0
LABEL_DX = 8.0  # px between a point and the near end of its label
_LINE_HALF_PX = 1.5  # half the width the skyline line counts as, for labels crossing it
# what a label overlapping each kind of obstacle costs, per px^2: another label (unreadable) far more than a marker
# (hidden, but hoverable) or the skyline line (crossed)
_COST_LABEL, _COST_MARKER, _COST_LINE = 4.0, 1.0, 0.5
_MAX_LABEL_OVERLAP = 0.1  # a label overlapping placed labels by more than this fraction of its box is left out


@dataclass(frozen=True)
class LabelPlace:
    """Where a point's name goes: ``right`` of the point (else left of it, ending there), its baseline ``dy`` px
    below the point (negative: above it)."""

    right: bool
    dy: float

    def box(self, px: float, py: float, name: str) -> tuple[float, float, float, float]:
        """(left, right, top, bottom) in px of ``name`` placed so for a point at (px, py)."""
        tw = _LABEL_CHAR_PX * len(name)
        left = px + LABEL_DX if self.right else px - LABEL_DX - tw
        return left, left + tw, py + self.dy - _LABEL_ASCENT, py + self.dy + _LABEL_DESCENT


def place_labels(
    xs: list[float],
    ys: list[float],
    names: list[str],
    xdom,
    ydom,
    width: int,
    height: int,
    points: list[tuple[float, float]] = (),
    line: list[tuple[float, float]] = (),
) -> list[LabelPlace | None]:
    """A place for each point's name, in the order given (the first are placed first: pass the most important
    first), or None where every place would overlap names already placed (the point keeps its tooltip).

    Each name tries right/left of its point x just above/below it or one line further out, preferring right in the
    left 72% of the axis and left beyond (so names do not run off the plot), above/below alternating from one name to
    the next; it takes the place that costs least: overlap with names placed before it, with the markers of
    ``points`` (every drawn (x, y)), with the skyline ``line`` (its points, joined as the chart draws it: step after),
    and with the plot's edges, all estimated in pixels on the log x / linear y axes.

    A name at the right edge goes left of its point; the next name at its height takes the other side of the line:

    >>> place_labels([1.0, 900.0, 920.0], [50, 50, 50], ["BiLSTM_BPE25", "teacher", "Theseus-3L"], [0.1, 1000],
    ...              [40, 60], 600, 300)
    [LabelPlace(right=True, dy=-8.0), LabelPlace(right=False, dy=9.0), LabelPlace(right=False, dy=-8.0)]
    """
    lx0, lx1 = math.log(xdom[0]), math.log(xdom[1])

    def pixels(xv: float, yv: float) -> tuple[float, float]:
        return width * (math.log(xv) - lx0) / (lx1 - lx0), height * (1 - (yv - ydom[0]) / (ydom[1] - ydom[0]))

    def area(a, b) -> float:
        return max(0.0, min(a[1], b[1]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[2], b[2]))

    r = _MARKER_RADIUS_PX
    markers = [(px - r, px + r, py - r, py + r) for px, py in (pixels(a, b) for a, b in points)]
    segments = []
    steps = [pixels(a, b) for a, b in sorted(line)]
    h = _LINE_HALF_PX
    for (x0, y0), (x1, y1) in zip(steps, steps[1:], strict=False):
        segments.append((x0, x1, y0 - h, y0 + h))  # along, at the left point's height
        segments.append((x1 - h, x1 + h, min(y0, y1), max(y0, y1)))  # then up (or down) to the next point
    cut = 0.72 * width
    placed: list[tuple[float, float, float, float]] = []
    out: list[LabelPlace | None] = []
    for i, (xv, yv, name) in enumerate(zip(xs, ys, names, strict=True)):
        px, py = pixels(xv, yv)
        prefer_right, prefer_above = px <= cut, i % 2 == 0
        best = None
        for right in (prefer_right, not prefer_right):
            for dy in LABEL_DYS:
                place = LabelPlace(right, dy)
                box = place.box(px, py, name)
                on_labels = sum(area(box, b) for b in placed)
                outside = (box[1] - box[0]) * (box[3] - box[2]) - area(box, (0.0, float(width), 0.0, float(height)))
                cost = (
                    _COST_LABEL * (on_labels + outside)
                    + _COST_MARKER * sum(area(box, b) for b in markers)
                    + _COST_LINE * sum(area(box, b) for b in segments)
                    + 2.0 * (right != prefer_right)
                    + 1.0 * ((dy < 0) != prefer_above)
                    + 3.0 * (abs(dy) > 10)
                )
                if best is None or cost < best[0]:
                    best = (cost, on_labels, box, place)
        _, on_labels, box, place = best
        if on_labels > _MAX_LABEL_OVERLAP * (box[1] - box[0]) * (box[3] - box[2]):
            out.append(None)
            continue
        placed.append(box)
        out.append(place)
    return out


_NAME_CLUSTER_DECADES = 0.15  # same-named points closer than this in size (~1.4x) ...
_NAME_CLUSTER_SCORE = 0.05  # ... and than this fraction of the panel's score range carry one name


def one_per_cluster(names: list[str], xs: list[float], ys: list[float]) -> list[bool]:
    """Which points are named: a point is left unnamed when a better-scoring point of the same name lies within
    ``_NAME_CLUSTER_DECADES`` in size and ``_NAME_CLUSTER_SCORE`` of the score range (seeds and near-identical
    compression settings of one model otherwise stack one name several times); same-named points further apart
    keep their own names.

    >>> one_per_cluster(["a", "a", "a", "b", "a", "a"], [0.20, 0.21, 0.22, 0.21, 1.0, 0.19],
    ...                  [72.2, 72.3, 72.6, 70.0, 72.7, 60.0])
    [False, False, True, True, True, True]
    """
    tol = _NAME_CLUSTER_SCORE * ((max(ys) - min(ys)) if ys else 0.0)
    kept: list[int] = []
    keep = [False] * len(names)
    for i in sorted(range(len(names)), key=lambda j: -ys[j]):
        if any(
            names[k] == names[i] and abs(math.log10(xs[i] / xs[k])) <= _NAME_CLUSTER_DECADES and ys[k] - ys[i] <= tol
            for k in kept
        ):
            continue
        kept.append(i)
        keep[i] = True
    return keep
