"""Overlap between masks: intersection-over-union and -over-minimum, greedy NMS; and the box of a dense mask.

Overlaps are computed on the RLEs by pycocotools (no decoding); boxes are XYXY pixels, max corner exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pycocotools import mask as coco_mask

from sam3_agent.masks.rle import Rle

if TYPE_CHECKING:
    from sam3_agent.schema import Instance

BoxXYXY = tuple[float, float, float, float]
"""x0, y0, x1, y1 in pixels (floats), max corner exclusive: the box of ``Instance.box``."""


def mask_to_box(mask: np.ndarray) -> BoxXYXY:
    """Tight XYXY box (max corner exclusive) of a mask; (0, 0, 0, 0) for an empty mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1))


def _areas(cocos: list[dict]) -> np.ndarray:
    # pycocotools' area() sizes an internal counter as uint8 and overflows past 255 masks: go in chunks.
    chunks = [coco_mask.area(cocos[i : i + 255]) for i in range(0, len(cocos), 255)]
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)


def _pairwise(a: Sequence[Rle], b: Sequence[Rle]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection, area_a, area_b as (len(a), len(b)), (len(a),), (len(b),) arrays."""
    ca = [r.to_coco() for r in a]
    cb = [r.to_coco() for r in b]
    area_a = _areas(ca)
    area_b = _areas(cb)
    iou = np.asarray(coco_mask.iou(ca, cb, [0] * len(cb)), dtype=np.float64).reshape(len(ca), len(cb))
    # iou = I / (A + B - I)  =>  I = iou * (A + B) / (1 + iou)
    inter = iou * (area_a[:, None] + area_b[None, :]) / (1.0 + iou)
    return inter, area_a, area_b


def mask_iou(a: Sequence[Rle], b: Sequence[Rle]) -> np.ndarray:
    """Pairwise intersection-over-union, shape (len(a), len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    inter, area_a, area_b = _pairwise(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mask_iom(a: Sequence[Rle], b: Sequence[Rle]) -> np.ndarray:
    """Pairwise intersection-over-minimum (area of the smaller mask), shape (len(a), len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    inter, area_a, area_b = _pairwise(a, b)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def nms(instances: Sequence[Instance], threshold: float = 0.5, metric: str = "iom") -> list[Instance]:
    """Greedy NMS by score: drop an instance overlapping a kept, higher-scored one by more than threshold.

    ``metric`` is "iom" (intersection over the smaller mask: SAM 3's counting recipe, which also removes
    a part nested in a whole) or "iou". Order of the result: by descending score.
    """
    if metric not in ("iom", "iou"):
        raise ValueError(f"metric must be 'iom' or 'iou', got {metric!r}")
    ranked = sorted(instances, key=lambda inst: inst.score, reverse=True)
    if len(ranked) < 2:
        return list(ranked)
    rles = [inst.rle for inst in ranked]
    overlap = mask_iom(rles, rles) if metric == "iom" else mask_iou(rles, rles)
    kept: list[int] = []
    for i in range(len(ranked)):
        if all(overlap[i, j] <= threshold for j in kept):
            kept.append(i)
    return [ranked[i] for i in kept]
