"""Mask utilities: COCO RLE encode/decode (pycocotools), boxes from masks, IoU / IoM, and NMS.

Masks are bool arrays of shape (height, width); boxes are XYXY pixels with exclusive max corner.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from sam3_agent.schema import BoxXYXY, Instance, Rle


def rle_encode(mask: np.ndarray) -> Rle:
    """Encode one (H, W) bool/uint8 mask as COCO RLE."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D (height, width) mask, got shape {mask.shape}")
    encoded = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return Rle(size=(int(encoded["size"][0]), int(encoded["size"][1])), counts=encoded["counts"].decode("ascii"))


def rle_encode_many(masks: np.ndarray) -> list[Rle]:
    """Encode an (N, H, W) stack of masks in one pycocotools call."""
    if masks.ndim != 3:
        raise ValueError(f"expected an (N, height, width) mask stack, got shape {masks.shape}")
    if len(masks) == 0:
        return []
    # pycocotools wants (H, W, N) in Fortran order, i.e. a C-contiguous (N, W, H) array viewed transposed.
    stack = np.ascontiguousarray(masks.transpose(0, 2, 1), dtype=np.uint8).transpose(2, 1, 0)
    encoded = coco_mask.encode(stack)
    return [Rle(size=(int(e["size"][0]), int(e["size"][1])), counts=e["counts"].decode("ascii")) for e in encoded]


def rle_decode(rle: Rle) -> np.ndarray:
    """Decode a COCO RLE into an (H, W) bool mask."""
    return coco_mask.decode(rle.to_coco()).astype(bool)


def rle_area(rle: Rle) -> int:
    return int(coco_mask.area(rle.to_coco()))


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Index of the first element of each segment of a concatenation, given the segments' lengths."""
    return np.cumsum(lengths) - lengths


def _segmented_cumsum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarting at each segment of the given lengths (all lengths > 0)."""
    total = np.cumsum(values)
    starts = _segment_starts(lengths)
    return total - np.repeat(total[starts] - values[starts], lengths)


def split_lengths(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """``values`` cut into consecutive views of the given lengths (``np.split`` without its per-piece overhead)."""
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


def _stored_values(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(all values stored in the COCO counts strings, concatenated, int64; how many per string)."""
    chars = np.frombuffer("".join(strings).encode("ascii"), np.uint8).astype(np.int64) - 48
    lengths = np.array([len(s) for s in strings], np.int64)
    if np.any(chars < 0) or np.any(chars > 63):
        raise ValueError("expected COCO RLE counts strings of characters '0'..'o' (ASCII 48..111)")
    last = (chars & 0x20) == 0  # the last chunk of a value: the 0x20 bit says "more chunks follow"
    if not last[np.cumsum(lengths)[lengths > 0] - 1].all():
        raise ValueError("a COCO RLE counts string ends in the middle of a value")
    ends = np.flatnonzero(last) + 1
    starts = np.concatenate(([0], ends))[:-1]
    if np.any(ends - starts > 12):  # 60 bits: far beyond any image, and no int64 overflow below
        raise ValueError("a value in a COCO RLE counts string has more than 12 chunks")
    chunk = np.arange(len(chars)) - np.repeat(starts, ends - starts)  # little-endian 5-bit chunk number
    values = np.add.reduceat((chars & 0x1F) << (5 * chunk), starts) if len(chars) else chars
    negative = (chars[ends - 1] & 0x10) != 0  # the sign bit of the last chunk
    values[negative] -= np.left_shift(1, 5 * (ends - starts)[negative])
    per_string = np.diff(np.searchsorted(ends, np.cumsum(lengths), side="right"), prepend=0)
    return values, per_string


def _run_lengths(rles: Sequence[Rle]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(run lengths of all RLEs concatenated, int64; number of runs per RLE; run number within its RLE)."""
    values, per_rle = _stored_values([rle.counts for rle in rles])
    if np.any(per_rle == 0):
        raise ValueError("a COCO RLE has an empty counts string")
    index = np.arange(len(values)) - np.repeat(_segment_starts(per_rle), per_rle)
    # From the 4th value on, a stored value is the difference to the run two before it: running sums over the
    # odd positions, and over the even positions from 2 on, restore the runs.
    for chain in ((index & 1) == 1, ((index & 1) == 0) & (index >= 2)):
        sums = _segmented_cumsum(np.where(chain, values, 0), per_rle)
        values = np.where(chain, sums, values)
    return values, per_rle, index


def rle_counts(rle: Rle) -> np.ndarray:
    """The run lengths of a COCO RLE, decoded from its compressed counts string in numpy (int64 array).

    Runs alternate background / foreground, starting with background (the first run may be 0 long), and
    cover the mask column by column (flat index ``x * height + y``). The string packs each stored value as
    little-endian 5-bit chunks, one per character offset by 48; bit 0x20 of a character says more chunks
    of the same value follow, bit 0x10 of a value's last chunk is its sign. From the fourth value on, a
    stored value is the difference to the run two positions earlier (pycocotools' ``rleFrString``).

    Raises:
        ValueError: the string is empty, holds a character outside '0'..'o', ends inside a value, or
            has a value of more than 12 chunks.
    """
    return _run_lengths([rle])[0]


def rle_decode_crops(rles: Sequence[Rle], boxes: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Decode only the part of each COCO RLE inside its integer XYXY box; one vectorised pass for all.

    Returns one C-contiguous bool (y1 - y0, x1 - x0) array per RLE, equal to ``rle_decode(rle)[y0:y1, x0:x1]``
    with the box (max corner exclusive) clipped to the mask; a box may be larger than the mask's bounding
    box. Only the box's pixels are written, so small masks on large images decode cheaply.

    Raises:
        ValueError: ``rles`` and ``boxes`` differ in length, or an RLE is malformed (see ``rle_counts``) or
            its runs do not cover height x width pixels.
    """
    if len(rles) != len(boxes):
        raise ValueError(f"expected one box per RLE, got {len(boxes)} boxes for {len(rles)} RLEs")
    if not rles:
        return []
    counts, per_rle, _ = _run_lengths(rles)
    runs = split_lengths(counts, per_rle)
    columns = decode_run_crops(runs, [rle.size for rle in rles], boxes)
    return [_transpose(c).view(bool) for c in columns]


def instance_runs(instances: Sequence[Instance]) -> list[np.ndarray]:
    """Each instance's ``Instance.runs``; those not parsed yet are parsed all in one pass (and cached)."""
    todo = [inst for inst in instances if "runs" not in inst.__dict__]
    if todo:
        counts, per_rle, _ = _run_lengths([inst.rle for inst in todo])
        for inst, runs in zip(todo, split_lengths(counts, per_rle), strict=True):
            inst.__dict__["runs"] = runs
    return [inst.runs for inst in instances]


def instance_extents(instances: Sequence[Instance]) -> list[tuple[tuple[int, int, int, int], int]]:
    """Each instance's ``Instance.mask_extent``; those not known yet are computed all in one pass (and cached)."""
    todo = [inst for inst in instances if "mask_extent" not in inst.__dict__]
    if todo:
        boxes, areas = run_boxes(instance_runs(todo), [inst.rle.size[0] for inst in todo])
        for inst, box, area in zip(todo, boxes.tolist(), areas.tolist(), strict=True):
            inst.__dict__["mask_extent"] = (tuple(box), area)
    return [inst.mask_extent for inst in instances]


def _concat_runs(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(all run lengths back to back, runs per mask, each run's number within its mask, its end (flat index))."""
    per_mask = np.array([len(r) for r in runs], np.int64)
    if np.any(per_mask == 0):
        raise ValueError("a mask has no runs (a COCO RLE has at least one count)")
    counts = np.concatenate(runs).astype(np.int64, copy=False)
    index = np.arange(len(counts)) - np.repeat(_segment_starts(per_mask), per_mask)
    return counts, per_mask, index, _segmented_cumsum(counts, per_mask)


def run_boxes(runs: Sequence[np.ndarray], heights: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Tight integer XYXY boxes (n, 4) (max corner exclusive) and pixel areas (n,) of masks given as COCO runs.

    ``runs[j]`` is mask j's run lengths (as ``rle_counts``) and ``heights[j]`` its image height. An empty mask
    gets the box (0, 0, 0, 0) and area 0.
    """
    n = len(runs)
    if n == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    counts, per_mask, index, ends = _concat_runs(runs)
    height = np.asarray(heights, np.int64)
    h = int(height[0]) if np.all(height == height[0]) else np.repeat(height, per_mask)
    fg = ((index & 1) == 1) & (counts > 0)
    col0, row0 = np.divmod(ends - counts, np.maximum(h, 1))
    col1, row1 = np.divmod(ends - 1, np.maximum(h, 1))
    spans = col0 != col1  # such a run covers a column's bottom and the next column's top
    # Per mask, min / max over its foreground runs: background runs get values that never win.
    big = np.iinfo(np.int64).max
    starts = _segment_starts(per_mask)
    areas = np.add.reduceat(np.where(fg, counts, 0), starts)
    boxes = np.stack(
        [
            np.minimum.reduceat(np.where(fg, col0, big), starts),
            np.minimum.reduceat(np.where(fg & ~spans, row0, np.where(fg, 0, big)), starts),
            np.maximum.reduceat(np.where(fg, col1 + 1, -1), starts),
            np.maximum.reduceat(np.where(fg & ~spans, row1 + 1, np.where(fg, h, -1)), starts),
        ],
        axis=1,
    )
    boxes[areas == 0] = 0
    return boxes, areas


def decode_run_crops(
    runs: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    boxes: Sequence[tuple[int, int, int, int]],
    values: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Masks given as COCO runs, decoded on their integer XYXY boxes only, in column-major order.

    Returns per mask a C-contiguous uint8 (x1 - x0, y1 - y0) array (the crop transposed): ``values[j]``
    (default 1) on the mask, 0 elsewhere. Boxes are clipped to the (height, width) ``sizes[j]``; a box may be
    larger than the mask's bounding box. Decoding in the RLE's own column-major order makes each run one
    contiguous stretch of its crop, so all crops are a single ``np.repeat``.

    Raises:
        ValueError: the runs of a mask do not cover height x width pixels.
    """
    if not runs:
        return []
    counts, per_mask, index, ends = _concat_runs(runs)
    sizes_arr = np.array(sizes, np.int64).reshape(-1, 2)
    heights, widths = sizes_arr[:, 0], sizes_arr[:, 1]
    if np.any(counts < 0) or np.any(ends[np.cumsum(per_mask) - 1] != heights * widths):
        raise ValueError("the runs of a COCO RLE do not cover height x width pixels")
    corners = np.array(boxes, np.int64).reshape(-1, 4)
    x0, x1 = (np.clip(corners[:, i], 0, widths) for i in (0, 2))
    y0, y1 = (np.clip(corners[:, i], 0, heights) for i in (1, 3))
    w, h = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    # Where each run ends in its crop's column-major order (rows clipped to y0..y1 in every column it passes).
    col, row = np.divmod(ends, np.repeat(np.maximum(heights, 1), per_mask))
    cx0, cx1, cy0, ch = (np.repeat(v, per_mask) for v in (x0, x1, y0, h))
    inside = (col - cx0) * ch + np.clip(row - cy0, 0, ch)
    in_crop = np.where(col < cx0, 0, np.where(col >= cx1, np.repeat(w * h, per_mask), inside))
    lengths = np.diff(in_crop, prepend=0)
    lengths[_segment_starts(per_mask)] = in_crop[_segment_starts(per_mask)]
    fill = np.ones(len(runs), np.uint8) if values is None else np.asarray(values, np.uint8)
    run_values = np.where((index & 1) == 1, np.repeat(fill, per_mask), 0).astype(np.uint8)
    flat = split_lengths(np.repeat(run_values, lengths), w * h)
    return [f.reshape(int(cw), int(rh)) for f, cw, rh in zip(flat, w.tolist(), h.tolist(), strict=True)]


def _transpose(columns: np.ndarray) -> np.ndarray:
    """A C-contiguous transposed copy of a 2-D uint8 array (OpenCV's blocked transpose: fast for big arrays)."""
    import cv2  # imported here: about 0.2 s, and the other mask utilities do not need it

    if columns.size == 0:
        return np.zeros(columns.shape[::-1], np.uint8)
    return cv2.transpose(columns)


def rle_decode_crop(rle: Rle, box: tuple[int, int, int, int]) -> np.ndarray:
    """The mask of a COCO RLE on rows y0:y1, columns x0:x1 of an integer XYXY box: bool (y1 - y0, x1 - x0).

    Equal to ``rle_decode(rle)[y0:y1, x0:x1]`` (box clipped to the mask), but writes only the box's pixels;
    see ``rle_decode_crops``, which decodes many at once.
    """
    return rle_decode_crops([rle], [box])[0]


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
