"""Set algebra of masks: union, intersection and difference of RLEs, and set logic on lists of objects.

Pixel algebra never decodes a mask: union and intersection are pycocotools' ``merge`` on the run lengths,
and a difference is the intersection with the complements of the masks taken away (a complement is the same
runs with the background / foreground roles swapped, from ``mask_data``'s runs). Every result is an ``Rle``
of the operands' image size; canonical operands (as ``rle_encode`` and the engine make them: no empty run
but the first) give the canonical RLE, so two results of the same pixels compare equal.

Object logic treats each mask as one object: an object of one list is *the same* as one of another list when
the two masks are identical or their intersection over the smaller mask (IoM) is at least ``SAME_OBJECT_IOM``
(SAM 3's duplicate rule), so "all the fruit except the bananas" drops each fruit mask that a banana mask covers.
The object functions return indices into their arguments; no new mask is made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from sam3_agent.masks.overlap import mask_iom
from sam3_agent.masks.rle import Rle
from sam3_agent.masks.runs import mask_data

SAME_OBJECT_IOM = 0.5
"""Two masks are one object when their intersection over the smaller mask reaches this (or they are equal)."""


def _check_sizes(rles: Sequence[Rle]) -> tuple[int, int]:
    """The common (height, width) of the RLEs; ValueError when there are none or the sizes differ."""
    if not rles:
        raise ValueError("mask algebra needs at least one mask")
    sizes = {rle.size for rle in rles}
    if len(sizes) > 1:
        raise ValueError(f"masks of different image sizes cannot be combined: {sorted(sizes)}")
    return rles[0].size


def _from_coco(encoded: dict) -> Rle:
    return Rle(size=(int(encoded["size"][0]), int(encoded["size"][1])), counts=encoded["counts"].decode("ascii"))


def _merge(rles: Sequence[Rle], *, intersect: bool) -> Rle:
    size = _check_sizes(rles)
    if len(rles) == 1:
        return rles[0]
    merged = _from_coco(coco_mask.merge([r.to_coco() for r in rles], intersect=intersect))
    if merged.size != size:  # pycocotools answers a size mismatch with a 0x0 mask instead of an error
        raise ValueError(f"pycocotools merged {size} masks into {merged.size}")
    return merged


def mask_union(rles: Sequence[Rle]) -> Rle:
    """The pixels in any of the masks (one or more, of one image size).

    Raises:
        ValueError: no masks, or masks of different image sizes.
    """
    return _merge(rles, intersect=False)


def mask_intersection(rles: Sequence[Rle]) -> Rle:
    """The pixels in every one of the masks (one or more, of one image size).

    Raises:
        ValueError: no masks, or masks of different image sizes.
    """
    return _merge(rles, intersect=True)


def mask_complement(rle: Rle) -> Rle:
    """The pixels not in the mask (the same runs, starting one run later or earlier)."""
    runs = mask_data(rle).runs
    flipped = runs[1:] if runs[0] == 0 else np.concatenate([[0], runs])
    height, width = rle.size
    if len(flipped) == 0:  # the complement of a full 0-pixel image: keep the one count an RLE needs
        flipped = np.zeros(1, np.int64)
    return _from_coco(coco_mask.frPyObjects({"size": [height, width], "counts": flipped.tolist()}, height, width))


def mask_difference(rle: Rle, removed: Sequence[Rle]) -> Rle:
    """The pixels of ``rle`` in none of the ``removed`` masks (``removed`` may be empty: ``rle`` itself).

    Removed masks whose boxes miss ``rle``'s box take nothing away and are skipped before any work.

    Raises:
        ValueError: masks of different image sizes.
    """
    _check_sizes([rle, *removed])
    touching = [r for r in removed if _boxes_meet(rle, r)]
    if not touching:
        return rle
    return mask_intersection([rle, *(mask_complement(r) for r in touching)])


def _boxes_meet(a: Rle, b: Rle) -> bool:
    ax0, ay0, ax1, ay1 = mask_data(a).box
    bx0, by0, bx1, by1 = mask_data(b).box
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def empty_mask(size: tuple[int, int]) -> Rle:
    """The mask with no pixels on an image of (height, width) ``size``."""
    height, width = size
    return _from_coco(coco_mask.frPyObjects({"size": [height, width], "counts": [height * width]}, height, width))


# --- objects ---------------------------------------------------------------------------------------------------


def same_objects(a: Sequence[Rle], b: Sequence[Rle], threshold: float = SAME_OBJECT_IOM) -> np.ndarray:
    """Bool (len(a), len(b)): mask i of ``a`` and mask j of ``b`` are one object (equal, or IoM >= threshold)."""
    if not a or not b:
        return np.zeros((len(a), len(b)), bool)
    _check_sizes([*a, *b])
    equal = np.array([[x == y for y in b] for x in a], bool)
    return equal | (mask_iom(a, b) >= threshold)


def object_difference(a: Sequence[Rle], b: Sequence[Rle], threshold: float = SAME_OBJECT_IOM) -> list[int]:
    """Indices of the masks of ``a`` that are no object of ``b`` ("the fruit except the bananas")."""
    same = same_objects(a, b, threshold)
    return [i for i in range(len(a)) if not same[i].any()]


def object_intersection(a: Sequence[Rle], b: Sequence[Rle], threshold: float = SAME_OBJECT_IOM) -> list[int]:
    """Indices of the masks of ``a`` that are also an object of ``b``."""
    same = same_objects(a, b, threshold)
    return [i for i in range(len(a)) if same[i].any()]


def object_union(a: Sequence[Rle], b: Sequence[Rle], threshold: float = SAME_OBJECT_IOM) -> list[int]:
    """Indices into ``[*a, *b]``: every mask of ``a``, then those of ``b`` that are no object of ``a``."""
    same = same_objects(b, a, threshold)
    return [*range(len(a)), *(len(a) + j for j in range(len(b)) if not same[j].any())]
