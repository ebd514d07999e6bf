"""Fast post-processing of SAM 3 outputs: low-resolution mask logits -> ``Instance`` objects.

SAM 3 predicts mask logits at a low resolution (288x288 for a 1008x1008 input) over the square-resized
image. ``Sam3Processor.post_process_instance_segmentation`` upsamples every kept mask to the full image
with one bilinear ``interpolate`` and then thresholds it: for 100 masks on a 1008x1008 image a
(100, 1008, 1008) float stack (400 MB, about 0.4 s on two CPU cores), and COCO-encoding those full masks
costs another 0.2 s. Here each mask goes straight from its low-res logits to a COCO RLE of the full image:

* rows and columns without any low-res cell at the threshold are skipped (a bilinear sample is a convex
  mix of its 2x2 source cells, so it reaches the threshold only next to a cell that does);
* the kept columns are interpolated horizontally at full width but only at the low-res rows; down each
  column the value between two source rows is linear, so the mask switches on or off only inside an
  interval whose ends lie on opposite sides of the threshold, once, at a row found in closed form;
* those switches, in column-major order, are the COCO run lengths.

The sampling grid is exactly the one of ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)`` from the low-res map to the original (height, width) (not 1008x1008: SAM 3 resizes
without padding, so the mask grid maps onto the original image by per-axis scaling), and thresholding
happens in logit space (p >= t  <=>  logit >= logit(t)). The result equals thresholding the full
``interpolate`` output except for pixels within float rounding of the threshold.

Box choice: an instance's box is the tight box of its thresholded mask (XYXY pixels, max corner
exclusive, like ``sam3_agent.masks.mask_to_box``), not SAM 3's regressed ``pred_boxes``, so that box,
mask and area always agree.

This module is torch-free: it takes numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pycocotools import mask as coco_mask

from sam3_agent.masks import nms
from sam3_agent.schema import BoxXYXY, Instance, Rle, Thresholds


def logit(p: float) -> float:
    """Inverse sigmoid, with logit(0) = -inf and logit(1) = +inf."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class _Axis:
    """Bilinear sampling of one axis, src cells -> dst pixels, as ``interpolate(align_corners=False)`` does it.

    Output pixel i sits at source position pos[i] and reads cells lo[i] and hi[i] with weight w[i] on hi;
    group_start[k]:group_start[k + 1] are the output pixels with lo == k.
    """

    scale: float
    pos: np.ndarray  # (dst,) float64, non-decreasing
    pos_padded: np.ndarray  # (dst + 2,) pos between -inf and +inf
    lo: np.ndarray  # (dst,) int64, non-decreasing
    hi: np.ndarray  # (dst,) int64, lo <= hi <= lo + 1
    w: np.ndarray  # (dst,) float32 in [0, 1)
    group_start: np.ndarray  # (src + 1,) int64


@lru_cache(maxsize=32)
def _axis(src: int, dst: int) -> _Axis:
    scale = src / dst
    pos = np.maximum((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    w = (pos - lo).astype(np.float32)
    w[hi == lo] = 0.0
    return _Axis(
        scale=scale,
        pos=pos,
        pos_padded=np.concatenate([[-np.inf], pos, [np.inf]]),
        lo=lo,
        hi=hi,
        w=w,
        group_start=np.searchsorted(lo, np.arange(src + 1), side="left"),
    )


def _first_reaching(axis: _Axis, t: np.ndarray, rising: np.ndarray) -> np.ndarray:
    """First output index i with pos[i] >= t[j] where rising[j], else with pos[i] > t[j] (len(pos) if none).

    A closed form of ``np.searchsorted(axis.pos, t, side="left" / "right")`` (several times faster for
    many values), corrected against pos where rounding puts it one off.
    """
    n = len(axis.pos)
    with np.errstate(over="ignore", invalid="ignore"):
        raw = np.clip((t + 0.5) / axis.scale - 0.5, -1.0, n + 1.0)
    guess = np.clip(np.ceil(raw).astype(np.int64), 0, n)
    below, here = axis.pos_padded[guess], axis.pos_padded[guess + 1]  # pos[guess - 1], pos[guess]
    guess -= np.where(rising, below >= t, below > t)
    guess += np.where(rising, here < t, here <= t)
    # pos is clamped to 0 at the first edge, which the closed form does not see.
    guess[np.where(rising, t <= 0, t < 0)] = 0
    return guess


@dataclass(frozen=True)
class _Switches:
    """Candidate on/off switches of several masks (flat arrays, one entry per switch).

    A switch sits between rows ``ji - 1`` and ``ji`` of a mask's window of source rows (``ji`` 0 and
    ``n_rows`` are virtual "off" rows above and below it), in output column ``col``.
    """

    slot: np.ndarray  # which mask (0..n-1, non-decreasing)
    col: np.ndarray  # output column
    row: np.ndarray  # source row k of the interval [k, k + 1] the switch lies in (-1 / h - 1: virtual)
    inner: np.ndarray  # bool: inside an interval between two real source rows
    rising: np.ndarray  # bool: off -> on
    base: np.ndarray  # float64 upsampled-column value at row k
    step: np.ndarray  # float64 value at row k + 1 minus value at row k


def _window_switches(
    logits: np.ndarray, rows_k: tuple[int, int], cols: _Axis, x: tuple[int, int], threshold: float
) -> tuple[np.ndarray, ...]:
    """Switches of one mask, columns x[0]:x[1], source rows rows_k[0]:rows_k[1] (see ``_Switches``)."""
    k0, k1 = rows_k
    c_lo, c_hi = cols.lo[x[0] : x[1]], cols.hi[x[0] : x[1]]
    c0 = int(c_lo[0])
    window = np.ascontiguousarray(logits[k0:k1, c0 : int(c_hi[-1]) + 1].T)  # (low-res cols, low-res rows)
    left = window[c_lo - c0]
    values = left + (window[c_hi - c0] - left) * cols.w[x[0] : x[1], None]  # (nx, k1 - k0)
    n_rows = k1 - k0
    # Virtual "off" rows before the first and after the last window row make the top and bottom edges of
    # the image switches like any other (only source rows 0 and h - 1 can be "on" next to them: the
    # window extends one row beyond the support, and rows outside the support are off everywhere).
    above = np.zeros((values.shape[0], n_rows + 2), dtype=bool)
    np.greater_equal(values, threshold, out=above[:, 1:-1])
    # Window rows outside the support are off (in exact arithmetic; pin them against rounding).
    above[:, 1] &= k0 == 0
    above[:, -2] &= k1 == logits.shape[0]
    xi, ji = np.nonzero(above[:, :-1] != above[:, 1:])
    lower = np.clip(ji - 1, 0, n_rows - 1)
    base = values[xi, lower].astype(np.float64)
    step = values[xi, np.minimum(ji, n_rows - 1)].astype(np.float64) - base
    return xi + x[0], ji - 1 + k0, (ji > 0) & (ji < n_rows), above[xi, ji + 1], base, step


def _collect_switches(
    mask_logits: np.ndarray, indices: list[int], rows: _Axis, cols: _Axis, threshold: float
) -> tuple[_Switches, list[int]]:
    """Switch candidates of masks ``indices`` and, per slot, which of them it is (empty masks get no slot)."""
    h = mask_logits.shape[1]
    parts: list[tuple[np.ndarray, ...]] = []
    slots: list[int] = []
    for i in indices:
        logits = np.asarray(mask_logits[i], dtype=np.float32)
        support = logits >= threshold
        r = np.flatnonzero(support.any(axis=1))
        if len(r) == 0:
            continue
        c = np.flatnonzero(support.any(axis=0))
        # Only output columns reading a support column, only source rows from just above to just below it.
        x = (int(np.searchsorted(cols.hi, c[0], side="left")), int(np.searchsorted(cols.lo, c[-1], side="right")))
        if x[0] >= x[1]:  # downsampling: no output column reads the support
            continue
        found = _window_switches(logits, (max(int(r[0]) - 1, 0), min(int(r[-1]) + 2, h)), cols, x, threshold)
        parts.append((np.full(len(found[0]), len(slots)), *found))
        slots.append(i)
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Switches(empty, empty, empty, empty.astype(bool), empty.astype(bool), empty * 1.0, empty * 1.0), []
    return _Switches(*(np.concatenate(column) for column in zip(*parts, strict=True))), slots


def _switch_positions(sw: _Switches, rows: _Axis, threshold: float) -> np.ndarray:
    """Column-major pixel index (row + col * height) of every switch; non-decreasing within a slot."""
    height = len(rows.pos)
    at = np.where(sw.row < 0, 0, height)
    inner = sw.inner
    if inner.any():
        k = sw.row[inner]
        with np.errstate(divide="ignore", invalid="ignore"):  # inner switches have step != 0
            cross = k + (threshold - sw.base[inner]) / sw.step[inner]
        found = _first_reaching(rows, cross, sw.rising[inner])
        at[inner] = np.clip(found, rows.group_start[k], rows.group_start[k + 1])
    return sw.col * height + at


@dataclass(frozen=True)
class EncodedMask:
    """One thresholded, upsampled mask: its full-image RLE, tight box and pixel count."""

    rle: Rle
    box: BoxXYXY  # pixels of the original image, max corner exclusive
    area: int


def encode_masks(
    mask_logits: np.ndarray, image_size: tuple[int, int], mask_threshold: float, indices: list[int] | None = None
) -> list[EncodedMask | None]:
    """Upsample (h, w) mask-logit maps to ``image_size`` (height, width), threshold and COCO-encode them.

    Args:
        mask_logits: (K, h, w) float mask logits.
        image_size: (height, width) of the original image.
        mask_threshold: probability a pixel needs to be foreground.
        indices: which masks to encode, in this order (default all).

    Returns:
        Per encoded mask, its RLE, tight XYXY box and area; None when no pixel reaches the threshold.
        Equal, up to float rounding at the threshold, to ``rle_encode(interpolate(logits) >= logit(t))``.
    """
    height, width = image_size
    _, h, w = mask_logits.shape
    rows, cols = _axis(h, height), _axis(w, width)
    threshold = logit(mask_threshold)
    order = list(range(len(mask_logits))) if indices is None else list(indices)
    sw, slots = _collect_switches(mask_logits, order, rows, cols, threshold)
    positions = _switch_positions(sw, rows, threshold)
    # Coinciding switches of one mask (a run ending at the bottom of a column and the next starting at the
    # top of the next one; an interval clipped to nothing) add up to 0: drop them. The rest alternate
    # on, off, on, ... within each mask.
    key = sw.slot * (height * width + 1) + positions
    first = np.flatnonzero(np.diff(key, prepend=-1))
    keep = first[np.add.reduceat(np.where(sw.rising, 1, -1), first) != 0] if len(first) else first
    edge_slot, edges = sw.slot[keep], positions[keep]
    bounds = np.searchsorted(edge_slot, np.arange(len(slots) + 1))
    starts, ends = edges[0::2], edges[1::2]
    encoded: dict[int, EncodedMask] = {}
    for slot, i in enumerate(slots):
        a, b = bounds[slot], bounds[slot + 1]
        if a == b:
            continue
        s, e = starts[a // 2 : b // 2], ends[a // 2 : b // 2]
        runs = np.diff(edges[a:b], prepend=0, append=height * width)
        counts = runs.tolist() if runs[-1] else runs[:-1].tolist()  # COCO ends on the last run, no empty one
        rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        first_col, last_col = s // height, (e - 1) // height
        if np.array_equal(first_col, last_col):
            top, bottom = int((s % height).min()), int(((e - 1) % height).max()) + 1
        else:  # a run spanning columns covers the bottom of one and the top of the next
            top, bottom = 0, height
        encoded[i] = EncodedMask(
            rle=Rle(size=(height, width), counts=rle["counts"].decode("ascii")),
            box=(float(first_col[0]), float(top), float(last_col[-1] + 1), float(bottom)),
            area=int((e - s).sum()),
        )
    return [encoded.get(i) for i in order]


def encode_mask(logits: np.ndarray, image_size: tuple[int, int], mask_threshold: float) -> EncodedMask | None:
    """``encode_masks`` for one (h, w) mask-logit map."""
    return encode_masks(logits[None], image_size, mask_threshold)[0]


def instances_from_logits(
    mask_logits: np.ndarray,
    scores: np.ndarray,
    image_size: tuple[int, int],
    thresholds: Thresholds,
    phrase: str,
    presence_score: float = 1.0,
) -> list[Instance]:
    """Turn one prompt's candidate masks into instances of the original image.

    Args:
        mask_logits: (K, h, w) float low-resolution mask logits over the square-resized image.
        scores: (K,) final scores, sigmoid(query logit) * sigmoid(presence logit).
        image_size: (height, width) of the original image; masks and boxes are mapped onto it.
        thresholds: keep score >= ``thresholds.score``; a pixel is foreground when p >= ``thresholds.mask``;
            IoM NMS at ``thresholds.nms_iom`` when set.
        phrase: the ``phrase`` of every instance (the prompt's label).
        presence_score: sigmoid(presence logit), stored on every instance.

    Returns:
        Instances sorted by descending score with ids 0..n-1; masks that come out empty are dropped.
    """
    if mask_logits.ndim != 3 or scores.shape != (len(mask_logits),):
        raise ValueError(f"expected (K, h, w) logits and (K,) scores, got {mask_logits.shape} and {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= thresholds.score].tolist()
    presence = min(max(float(presence_score), 0.0), 1.0)
    instances: list[Instance] = []
    for idx, encoded in zip(order, encode_masks(mask_logits, image_size, thresholds.mask, order), strict=True):
        if encoded is None:
            continue
        instances.append(
            Instance(
                id=len(instances),
                phrase=phrase,
                score=min(max(float(scores[idx]), 0.0), 1.0),
                presence_score=presence,
                box=encoded.box,
                rle=encoded.rle,
                area=encoded.area,
            )
        )
    if thresholds.nms_iom is not None and len(instances) > 1:
        kept = nms(instances, threshold=thresholds.nms_iom, metric="iom")
        instances = [inst.model_copy(update={"id": i}) for i, inst in enumerate(kept)]
    return instances
