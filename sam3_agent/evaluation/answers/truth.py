"""Ground truth of the answer suite, computed from a scene's true masks (not from ``sam3_agent.geometry``).

The rules are the ones the agent's tools implement (c = mask centroid, x right, y down; a relation holds
when it holds to AT LEAST ONE anchor, never an object to itself):

- left_of: c(s).x < c(a).x and >= 75% of s's pixels lie left of c(a).x; right_of, above, below alike.
- on: c(s).y < c(a).y, c(s).x within a's box x-span, masks touching (gap <= max(2 px, 10% of s's height)).
- under: c(s).x within a's box x-span and s below a. inside: >= 90% of s's pixels are a's; contains: a in s.
- next_to: gap <= 0.5 x the smaller of the two boxes' longer sides.
- between: c(s) inside the convex hull of the boxes of a Y object and a Z object, and inside neither box.
- nearest / farthest: the smallest / largest gap to the nearest anchor. Orderings: by centroid or pixel
  area, ties to the higher score, then to scene order.

The gap between two masks is 0 when they overlap or touch, else the distance between their closest pixel
centres minus 1. ``clear_*`` functions also evaluate every rule with ``STRICT`` and ``LENIENT`` thresholds
and raise ``Ambiguous`` unless all three agree, so a generated scene never sits near a threshold.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

import numpy as np

from sam3_agent.testing.scene import Scene, normalize_phrase

Relation = Literal["left_of", "right_of", "above", "below", "on", "under", "inside", "contains", "next_to"]
Ordering = Literal["leftmost", "rightmost", "topmost", "bottommost", "largest", "smallest"]
RELATIONS: tuple[str, ...] = get_args(Relation)
ORDERINGS: tuple[str, ...] = get_args(Ordering)
_DIRECTIONS = {"left_of": (0, -1), "right_of": (0, 1), "above": (1, -1), "below": (1, 1)}


class Ambiguous(ValueError):
    """The scene is too close to a rule's threshold (or lacks what the case needs): draw another."""


@dataclass(frozen=True)
class Rules:
    """Thresholds of the rules. ``centre_margin``: how far beyond the anchor's centroid the subject's must be;
    ``span_margin``: fraction of the anchor's box width the subject's centroid keeps from its sides;
    ``between_margin``: pixels the centroid keeps inside the hull and outside the boxes."""

    side: float = 0.75
    centre_margin: float = 0.0
    inside: float = 0.9
    near: float = 0.5
    touch_px: float = 2.0
    touch_frac: float = 0.1
    span_margin: float = 0.0
    between_margin: float = 0.0


DEFAULT = Rules()
STRICT = Rules(side=0.97, centre_margin=3, inside=0.99, near=0.1, touch_px=1, touch_frac=0, span_margin=0.15,
               between_margin=5)  # fmt: skip
LENIENT = Rules(side=0.1, centre_margin=-1e9, inside=0.6, near=1.5, touch_px=6, touch_frac=0.35, span_margin=-0.15,
                between_margin=-5)  # fmt: skip
_ALL_RULES = (DEFAULT, STRICT, LENIENT)


@dataclass
class Shape:
    """Facts of one true mask: pixel centres, tight box (x0, y0, x1, y1; max exclusive), centroid, outline."""

    mask: np.ndarray
    xs: np.ndarray = field(init=False)
    ys: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            raise Ambiguous("an object has an empty mask")
        self.xs, self.ys = xs + 0.5, ys + 0.5

    @cached_property
    def box(self) -> tuple[int, int, int, int]:
        return (int(self.xs.min()), int(self.ys.min()), int(self.xs.max()) + 1, int(self.ys.max()) + 1)

    @property
    def area(self) -> int:
        return len(self.xs)

    @cached_property
    def centroid(self) -> tuple[float, float]:
        return float(self.xs.mean()), float(self.ys.mean())

    @property
    def long_side(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)

    @cached_property
    def outline(self) -> np.ndarray:
        """(n, 2) x, y pixel centres of the mask's pixels with a 4-neighbour outside it."""
        padded = np.pad(self.mask, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        ys, xs = np.nonzero(self.mask & ~inner)
        return np.stack([xs + 0.5, ys + 0.5], axis=1)


class Facts:
    """Cached shapes and gaps of a scene's objects, and its objects grouped by normalised phrase."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._shapes: dict[int, Shape] = {}
        self._gaps: dict[tuple[int, int], float] = {}

    def shape(self, i: int) -> Shape:
        if i not in self._shapes:
            self._shapes[i] = Shape(self.scene.mask(i))
        return self._shapes[i]

    def group(self, phrase: str) -> list[int]:
        """Indices of the objects the exact segmenter finds for ``phrase``."""
        want = normalize_phrase(phrase)
        return [i for i, o in enumerate(self.scene.objects) if normalize_phrase(o.phrase) == want]

    def overlap(self, i: int, j: int) -> int:
        return int((self.scene.mask(i) & self.scene.mask(j)).sum())

    def gap(self, i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in self._gaps:
            self._gaps[key] = self._compute_gap(*key)
        return self._gaps[key]

    def _compute_gap(self, i: int, j: int) -> float:
        if self.overlap(i, j):
            return 0.0
        a, b = self.shape(i).outline, self.shape(j).outline
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        return max(0.0, float(np.sqrt(d2.min())) - 1.0)


def _beyond(f: Facts, s: int, a: int, relation: str, r: Rules) -> bool:
    axis, sign = _DIRECTIONS[relation]
    line = f.shape(a).centroid[axis]
    if sign * (f.shape(s).centroid[axis] - line) <= r.centre_margin:
        return False
    coords = f.shape(s).xs if axis == 0 else f.shape(s).ys
    return float(np.mean(sign * (coords - line) > 0)) >= r.side


def _in_span(f: Facts, s: int, a: int, r: Rules) -> bool:
    x0, _, x1, _ = f.shape(a).box
    margin = r.span_margin * (x1 - x0)
    return x0 + margin <= f.shape(s).centroid[0] <= x1 - margin


def _on(f: Facts, s: int, a: int, r: Rules) -> bool:
    if f.shape(s).centroid[1] >= f.shape(a).centroid[1] - r.centre_margin or not _in_span(f, s, a, r):
        return False
    _, y0, _, y1 = f.shape(s).box
    return f.gap(s, a) <= max(r.touch_px, r.touch_frac * (y1 - y0))


def holds(f: Facts, s: int, relation: str, a: int, r: Rules = DEFAULT) -> bool:
    """Whether ``relation`` holds between subject object ``s`` and anchor object ``a``."""
    if s == a:
        return False
    if relation in _DIRECTIONS:
        return _beyond(f, s, a, relation, r)
    if relation == "on":
        return _on(f, s, a, r)
    if relation == "under":
        return _in_span(f, s, a, r) and _beyond(f, s, a, "below", r)
    if relation == "inside":
        return f.overlap(s, a) >= r.inside * f.shape(s).area
    if relation == "contains":
        return holds(f, a, "inside", s, r)
    if relation == "next_to":
        return f.gap(s, a) <= r.near * min(f.shape(s).long_side, f.shape(a).long_side)
    raise ValueError(f"unknown relation {relation!r}")


def clear_related(f: Facts, subjects: Sequence[int], relation: str, anchors: Sequence[int]) -> set[int]:
    """The subjects for which ``relation`` holds to at least one anchor; ``Ambiguous`` unless every
    (subject, anchor) pair gets the same verdict under the default, strict and lenient rules."""
    kept: set[int] = set()
    for s, a in itertools.product(subjects, anchors):
        verdicts = {holds(f, s, relation, a, r) for r in _ALL_RULES}
        if len(verdicts) > 1:
            raise Ambiguous(f"{relation} of object {s} to object {a} is not clear-cut")
        if verdicts == {True}:
            kept.add(s)
    return kept


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Convex hull, counter-clockwise (monotone chain)."""
    pts = sorted(set(points))

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _depth_in_hull(point: tuple[float, float], hull: list[tuple[float, float]]) -> float:
    """Distance from the point to the nearest hull edge line: positive inside, negative outside."""
    depths = []
    for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1], strict=True):
        length = float(np.hypot(x1 - x0, y1 - y0))
        depths.append(((x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0)) / length)
    return min(depths)


def _depth_in_box(point: tuple[float, float], box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return min(point[0] - x0, x1 - point[0], point[1] - y0, y1 - point[1])


def between(f: Facts, s: int, y: int, z: int, r: Rules = DEFAULT) -> bool:
    """c(s) inside the convex hull of the boxes of objects ``y`` and ``z`` and inside neither box."""
    if len({s, y, z}) < 3:
        return False
    boxes = [f.shape(y).box, f.shape(z).box]
    corners = [(float(bx), float(by)) for b in boxes for bx in (b[0], b[2]) for by in (b[1], b[3])]
    c = f.shape(s).centroid
    in_boxes = max(_depth_in_box(c, b) for b in boxes)
    return _depth_in_hull(c, _hull(corners)) >= r.between_margin and in_boxes < -r.between_margin


def clear_between(f: Facts, subjects: Sequence[int], ys: Sequence[int], zs: Sequence[int]) -> set[int]:
    """The subjects between some Y object and some other Z object; ``Ambiguous`` unless clear-cut."""
    kept: set[int] = set()
    for s, y, z in itertools.product(subjects, ys, zs):
        verdicts = {between(f, s, y, z, r) for r in _ALL_RULES}
        if len(verdicts) > 1:
            raise Ambiguous(f"object {s} between objects {y} and {z} is not clear-cut")
        if verdicts == {True}:
            kept.add(s)
    return kept


def clear_by_gap(f: Facts, subjects: Sequence[int], anchors: Sequence[int], *, farthest: bool) -> int:
    """The subject with the smallest (``farthest``: largest) gap to its nearest anchor; ``Ambiguous`` unless
    it beats the runner-up by max(8 px, 25% of the smaller gap)."""
    gaps = []
    for s in subjects:
        others = [a for a in anchors if a != s]
        if not others:
            raise Ambiguous(f"object {s} has no anchor but itself")
        gaps.append((min(f.gap(s, a) for a in others), s))
    gaps.sort(reverse=farthest)
    if len(gaps) > 1:
        first, second = gaps[0][0], gaps[1][0]
        if abs(first - second) < max(8.0, 0.25 * min(first, second)):
            raise Ambiguous("two subjects are about as near (far) as each other")
    return gaps[0][1]


def _order_value(f: Facts, i: int, ordering: str) -> float:
    x, y = f.shape(i).centroid
    area = float(f.shape(i).area)
    return {"leftmost": x, "rightmost": -x, "topmost": y, "bottommost": -y, "largest": -area, "smallest": area}[
        ordering
    ]


def ordered(f: Facts, objects: Sequence[int], ordering: str) -> list[int]:
    """The objects, most ``ordering`` first; ties to the higher score, then to scene order."""
    scores = [o.score for o in f.scene.objects]
    return sorted(objects, key=lambda i: (_order_value(f, i, ordering), -scores[i], i))


def clear_ordered(f: Facts, objects: Sequence[int], ordering: str, *, ties: bool = False) -> list[int]:
    """``ordered``, checked clear-cut: neighbours in the order differ by >= 12 px in position or >= 20% in
    area. With ``ties``, equal areas are allowed when the scores differ by >= 0.02."""
    ranked = ordered(f, objects, ordering)
    scores = [o.score for o in f.scene.objects]
    for i, j in itertools.pairwise(ranked):
        a, b = abs(_order_value(f, i, ordering)), abs(_order_value(f, j, ordering))
        if ordering in ("largest", "smallest"):
            if ties and a == b and abs(scores[i] - scores[j]) >= 0.02:
                continue
            if max(a, b) < 1.2 * min(a, b):
                raise Ambiguous(f"areas {a:.0f} and {b:.0f} are too close")
        elif abs(a - b) < 12:
            raise Ambiguous(f"positions {a:.1f} and {b:.1f} are too close")
    return ranked
