"""Spatial relations, distances and orderings between instances, computed from their masks.

The language model names the relation ("the cup left of the laptop", "the second largest apple"); this
module decides it, with rules a reader can predict. Numpy (and one OpenCV distance transform for
distances): each mask is decoded on its tight box only (``masks.mask_crop``; boxes and areas come from
``Instance.mask_data`` without decoding) and boxes serve as a fast pre-check, so nothing scans a full image.

Conventions: masks are bool (H, W); pixel (row y, column x) has its centre at (x + 0.5, y + 0.5), so a
centroid and ``Instance.center`` agree for a filled box. x grows to the right, y grows downwards:
"above" means a smaller y. An instance with an empty mask takes part in no relation and sorts last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import cv2
import numpy as np

from sam3_agent.masks import IntBox, mask_crop
from sam3_agent.schema import Instance

Relation = Literal["left_of", "right_of", "above", "below", "on", "under", "inside", "contains", "overlaps", "next_to"]
Ordering = Literal["leftmost", "rightmost", "topmost", "bottommost", "largest", "smallest", "highest_score"]
RELATIONS: tuple[str, ...] = get_args(Relation)
ORDERINGS: tuple[str, ...] = get_args(Ordering)

SIDE_FRACTION = 0.75
INSIDE_FRACTION = 0.9
CONTACT_FRACTION = 0.1
"""``on``: masks in contact when their gap is at most this share of the subject's height (and at least 2 px)."""
NEAR_FRACTION = 0.5
"""``next_to``: the gap is at most this share of the smaller object's size (the longer side of its box)."""


def _box(instance: Instance) -> IntBox:
    """Tight integer box of the mask, from its runs (no decoding); (0, 0, 0, 0) if empty."""
    return instance.mask_data.box


def _area(instance: Instance) -> int:
    """Mask pixel count, from its runs (no decoding)."""
    return instance.mask_data.area


def _crop(instance: Instance) -> tuple[np.ndarray, IntBox]:
    """The mask on its tight box (only that box decoded), and the box."""
    box = _box(instance)
    return mask_crop(instance.rle, box), box


def _is_empty(instance: Instance) -> bool:
    x0, y0, x1, y1 = _box(instance)
    return x1 <= x0 or y1 <= y0


def centroid(instance: Instance) -> tuple[float, float]:
    """(x, y) mean of the mask's pixel centres, in pixels of the original image.

    Raises:
        ValueError: the mask is empty.
    """
    crop, (x0, y0, _, _) = _crop(instance)
    ys, xs = np.nonzero(crop)
    if len(xs) == 0:
        raise ValueError(f"instance {instance.id} ({instance.phrase!r}) has an empty mask: it has no centroid")
    return (float(xs.mean()) + x0 + 0.5, float(ys.mean()) + y0 + 0.5)


def _intersection(a: Instance, b: Instance) -> int:
    """Number of pixels in both masks; 0 at once when the boxes do not overlap."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = _box(a), _box(b)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0
    region = (x0, y0, x1, y1)
    return int(np.count_nonzero(mask_crop(a.rle, region) & mask_crop(b.rle, region)))


def _side_fraction(subject: Instance, axis: int, limit: float, before: bool) -> float:
    """Fraction of the subject's pixels whose centre coordinate on ``axis`` (0 = x, 1 = y) is < / > limit."""
    crop, box = _crop(subject)
    counts = crop.sum(axis=0 if axis == 0 else 1)  # pixels per column (x) or per row (y)
    centres = np.arange(box[axis], box[axis + 2]) + 0.5
    side = centres < limit if before else centres > limit
    return float(counts[side].sum()) / float(counts.sum())


def _same(a: Instance, b: Instance) -> bool:
    """The same object: the very instance, or one with an identical mask (e.g. found by two prompts)."""
    return a is b or a.rle == b.rle


def _check_same_image(a: Instance, b: Instance) -> None:
    if a.image_size != b.image_size:
        raise ValueError(
            f"instances {a.id} and {b.id} belong to different image sizes (H, W): {a.image_size} vs {b.image_size}"
        )


def holds(
    subject: Instance,
    relation: Relation,
    anchor: Instance,
    *,
    side_fraction: float = SIDE_FRACTION,
    inside_fraction: float = INSIDE_FRACTION,
) -> bool:
    """Whether ``subject`` stands in ``relation`` to ``anchor``. The rules, with c = mask centroid:

    - ``left_of``: c(subject).x < c(anchor).x, and at least ``side_fraction`` (0.75) of the subject's
      pixels lie left of c(anchor).x. ``right_of``, ``above`` (smaller y), ``below`` likewise. So a diagonal
      neighbour can be both left_of and above; an object stacked on another with nearly the same centre x
      is neither left_of nor right_of it; a small object overlapping a large one's side still counts.
    - ``on`` (on top of): the subject's centroid is above the anchor's and within the anchor's box columns,
      and the masks touch or overlap (gap <= max(2 px, ``CONTACT_FRACTION`` of the subject's box height)).
    - ``under``: the subject's centroid is within the anchor's box columns and ``below`` holds (no contact).
    - ``inside``: at least ``inside_fraction`` (0.9) of the subject's pixels are also anchor pixels.
    - ``contains``: the anchor is inside the subject (same rule, roles swapped).
    - ``overlaps``: the masks share at least one pixel.
    - ``next_to`` (beside, near): the gap between the masks is at most ``NEAR_FRACTION`` (0.5) of the smaller
      object's size, the longer side of its box.

    An empty mask on either side makes every relation false.

    Raises:
        ValueError: unknown relation, or masks of different image sizes.
    """
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}: expected one of {', '.join(RELATIONS)}")
    _check_same_image(subject, anchor)
    if _is_empty(subject) or _is_empty(anchor):
        return False
    if relation == "overlaps":
        return _intersection(subject, anchor) > 0
    if relation == "inside":
        return _intersection(subject, anchor) >= inside_fraction * _area(subject)
    if relation == "contains":
        return _intersection(subject, anchor) >= inside_fraction * _area(anchor)
    if relation == "next_to":
        return mask_distance(subject, anchor) <= NEAR_FRACTION * min(_size(subject), _size(anchor))
    if relation in ("on", "under"):
        return _stacked(subject, relation, anchor, side_fraction)
    return _beside(subject, relation, anchor, side_fraction)


def _beside(subject: Instance, relation: str, anchor: Instance, side_fraction: float) -> bool:
    """The left_of / right_of / above / below rule of :func:`holds`."""
    axis = 0 if relation in ("left_of", "right_of") else 1
    before = relation in ("left_of", "above")
    sc, ac = centroid(subject)[axis], centroid(anchor)[axis]
    if (sc >= ac) if before else (sc <= ac):
        return False
    return _side_fraction(subject, axis, ac, before) >= side_fraction


def _stacked(subject: Instance, relation: str, anchor: Instance, side_fraction: float) -> bool:
    """The on / under rule of :func:`holds`: in the anchor's columns, and above in contact / below."""
    (sx, sy), (_, ay) = centroid(subject), centroid(anchor)
    ax0, _, ax1, _ = _box(anchor)
    if not ax0 <= sx < ax1:
        return False
    if relation == "under":
        return _beside(subject, "below", anchor, side_fraction)
    _, y0, _, y1 = _box(subject)
    return sy < ay and mask_distance(subject, anchor) <= max(2.0, CONTACT_FRACTION * (y1 - y0))


def _size(instance: Instance) -> int:
    """The longer side of the mask's tight box, in pixels."""
    x0, y0, x1, y1 = _box(instance)
    return max(x1 - x0, y1 - y0)


def filter_by_relation(
    subjects: Sequence[Instance],
    relation: Relation,
    anchors: Sequence[Instance],
    *,
    negate: bool = False,
    side_fraction: float = SIDE_FRACTION,
    inside_fraction: float = INSIDE_FRACTION,
) -> list[Instance]:
    """The subjects (in their order) for which ``holds(subject, relation, anchor)`` for at least one anchor
    that is not the subject itself (the same instance or an identical mask); with ``negate``, the subjects
    for which it holds for none ("the cups not on the table"). Options as in ``holds``.
    """
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}: expected one of {', '.join(RELATIONS)}")
    rule = {"side_fraction": side_fraction, "inside_fraction": inside_fraction}
    return [s for s in subjects if negate != any(not _same(s, a) and holds(s, relation, a, **rule) for a in anchors)]


def between(subjects: Sequence[Instance], first: Sequence[Instance], second: Sequence[Instance]) -> list[Instance]:
    """The subjects (in their order) lying between an instance of ``first`` and a different one of
    ``second``: the subject's centroid is inside the convex hull of the two anchors' boxes and inside
    neither box. "The cup between the two plates" passes the plates as both ``first`` and ``second``.
    """
    pairs = [(a, b) for a in first for b in second if not _same(a, b) and not _is_empty(a) and not _is_empty(b)]
    hulls = [(a, b, _hull(_box(a), _box(b))) for a, b in pairs]

    def lies_between(s: Instance) -> bool:
        if _is_empty(s):
            return False
        x, y = centroid(s)
        return any(
            not (_same(s, a) or _same(s, b) or _in_box(x, y, _box(a)) or _in_box(x, y, _box(b)))
            and cv2.pointPolygonTest(hull, (x, y), False) >= 0
            for a, b, hull in hulls
        )

    for s in subjects:
        for a in (*first, *second):
            _check_same_image(s, a)
    return [s for s in subjects if lies_between(s)]


def _hull(a: IntBox, b: IntBox) -> np.ndarray:
    corners = [(x, y) for x0, y0, x1, y1 in (a, b) for x in (x0, x1) for y in (y0, y1)]
    return cv2.convexHull(np.array(corners, np.float32))


def _in_box(x: float, y: float, box: IntBox) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _distance_map(anchor: Instance, region: IntBox) -> np.ndarray:
    """float32 map over ``region``: Euclidean distance from each pixel centre to the nearest anchor pixel.

    Exact (OpenCV's precise L2 transform); exact on a crop too, as long as it holds the whole anchor.
    """
    outside = np.where(mask_crop(anchor.rle, region), 0, 255).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _gap(distances: np.ndarray, region: IntBox, subject: Instance) -> float:
    """Gap from a distance map over ``region`` (holding the subject's box) to the subject's mask."""
    crop, (sx0, sy0, sx1, sy1) = _crop(subject)
    x0, y0 = region[0], region[1]
    nearest = float(distances[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][crop].min())
    return max(0.0, nearest - 1.0)


def _union(boxes: Sequence[IntBox]) -> IntBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def mask_distance(a: Instance, b: Instance) -> float:
    """Gap in pixels between two masks: 0 if they overlap or touch side by side, else the Euclidean
    distance between the closest pixel centres minus 1 (diagonal neighbours: ~0.41). inf if one is empty.
    """
    _check_same_image(a, b)
    if _is_empty(a) or _is_empty(b):
        return float("inf")
    region = _union([_box(a), _box(b)])
    return _gap(_distance_map(a, region), region, b)


def nearest_to(subjects: Sequence[Instance], anchor: Instance) -> list[Instance]:
    """The subjects sorted by ``mask_distance`` to the anchor (nearest first), the anchor itself (or an
    identical mask) left out. Ties: by centroid distance, then by id; empty masks come last.
    """
    others = [s for s in subjects if not _same(s, anchor)]
    for s in others:
        _check_same_image(s, anchor)
    if _is_empty(anchor):
        return sorted(others, key=lambda s: s.id)
    live = [s for s in others if not _is_empty(s)]
    region = _union([_box(anchor), *(_box(s) for s in live)])
    distances = _distance_map(anchor, region)  # one transform serves every subject
    ax, ay = centroid(anchor)

    def key(s: Instance) -> tuple[float, float, int]:
        if _is_empty(s):
            return (float("inf"), float("inf"), s.id)
        sx, sy = centroid(s)
        return (_gap(distances, region, s), float(np.hypot(sx - ax, sy - ay)), s.id)

    return sorted(others, key=key)


def rank_by_distance(
    subjects: Sequence[Instance], anchors: Sequence[Instance], *, farthest: bool = False
) -> list[tuple[Instance, float]]:
    """(subject, gap) pairs sorted by the gap (``mask_distance``) to the nearest of the anchors: nearest first,
    or farthest first with ``farthest``. A subject is never measured against itself (the same instance or an
    identical mask), and one that is every anchor is left out. Ties: by centroid distance to that nearest
    anchor (nearer first; farther first with ``farthest``), then by id. Empty masks come last.
    """
    scored = []
    for s in subjects:
        others = [a for a in anchors if not _same(s, a)]
        if not others:
            continue
        gaps = [(mask_distance(s, a), _centroid_gap(s, a)) for a in others]
        scored.append((s, min(gaps)))
    live = [item for item in scored if np.isfinite(item[1][0])]
    dead = [(s, float("inf")) for s, gap in scored if not np.isfinite(gap[0])]
    sign = -1.0 if farthest else 1.0
    live.sort(key=lambda item: (sign * item[1][0], sign * item[1][1], item[0].id))
    return [(s, gap) for s, (gap, _) in live] + sorted(dead, key=lambda item: item[0].id)


def _centroid_gap(a: Instance, b: Instance) -> float:
    if _is_empty(a) or _is_empty(b):
        return float("inf")
    (ax, ay), (bx, by) = centroid(a), centroid(b)
    return float(np.hypot(ax - bx, ay - by))


def order_by(instances: Sequence[Instance], ordering: Ordering) -> list[Instance]:
    """The instances sorted so that the first is the most ``ordering``.

    leftmost / rightmost / topmost / bottommost compare mask centroids (x or y); largest / smallest the
    mask pixel count; highest_score the score. Ties go to the smaller id, then to the input order
    (stable). Empty masks come last for every ordering but highest_score.

    Raises:
        ValueError: unknown ordering.
    """
    if ordering not in ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}: expected one of {', '.join(ORDERINGS)}")

    def key(inst: Instance) -> tuple[bool, float, int]:
        if ordering == "highest_score":
            return (False, -inst.score, inst.id)
        area = _area(inst)
        if area == 0:
            return (True, 0.0, inst.id)
        if ordering in ("largest", "smallest"):
            return (False, -area if ordering == "largest" else area, inst.id)
        x, y = centroid(inst)
        value = {"leftmost": x, "rightmost": -x, "topmost": y, "bottommost": -y}[ordering]
        return (False, value, inst.id)

    return sorted(instances, key=key)


def kth(instances: Sequence[Instance], ordering: Ordering, k: int) -> Instance:
    """The k-th instance (1-based) of ``order_by(instances, ordering)``: kth(xs, "leftmost", 1) is the
    leftmost one.

    Raises:
        ValueError: k < 1 or k > len(instances), or an unknown ordering.
    """
    if not 1 <= k <= len(instances):
        raise ValueError(f"k={k} is out of range: expected 1 <= k <= {len(instances)} (the number of instances)")
    return order_by(instances, ordering)[k - 1]
