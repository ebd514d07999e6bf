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
* those switches, in column-major order, are the COCO run lengths, which come along with each instance
  (``Instance.runs``) so that overlays need not parse the strings again.

The loops over masks, rows and columns are compiled (``sam3_agent.engine.mask_edges``, numba); the masks
go in pieces to a helper thread and the calling one (``sam3_agent.parallel.share``).

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
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from sam3_agent.engine import mask_edges
from sam3_agent.masks import nms
from sam3_agent.parallel import share
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
    group_start[k]:group_start[k + 1] are the output pixels with lo == k. Cell c is read by output pixels
    first_reader[c]:last_reader[c].
    """

    scale: float
    pos: np.ndarray  # (dst,) float64, non-decreasing
    lo: np.ndarray  # (dst,) int64, non-decreasing
    hi: np.ndarray  # (dst,) int64, lo <= hi <= lo + 1
    w: np.ndarray  # (dst,) float32 in [0, 1)
    group_start: np.ndarray  # (src + 1,) int64
    first_reader: np.ndarray  # (src,) int64: the first output pixel with hi >= c
    last_reader: np.ndarray  # (src,) int64: one past the last output pixel with lo <= c


@lru_cache(maxsize=32)
def _axis(src: int, dst: int) -> _Axis:
    scale = src / dst
    pos = np.maximum((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    w = (pos - lo).astype(np.float32)
    w[hi == lo] = 0.0
    cells = np.arange(src)
    return _Axis(
        scale=scale,
        pos=pos,
        lo=lo,
        hi=hi,
        w=w,
        group_start=np.searchsorted(lo, np.arange(src + 1), side="left"),
        first_reader=np.searchsorted(hi, cells, side="left"),
        last_reader=np.searchsorted(lo, cells, side="right"),
    )


_MASKS_PER_PIECE = 12  # masks per piece of work shared with the helper thread (about 0.5-1 ms)


def _all_edges(
    logits: np.ndarray, order: list[int], rows: _Axis, cols: _Axis, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(slot, column-major pixel index) of the run edges of masks ``order`` (slot = position in ``order``),
    sorted by slot, then position; on, off, on, ... within each mask.

    The masks go in pieces to the helper thread and this one (the compiled loops release the GIL).
    """
    indices = np.asarray(order, dtype=np.int64)
    starts = list(range(0, len(indices), _MASKS_PER_PIECE))

    def piece(k: int) -> tuple[np.ndarray, np.ndarray]:
        part = indices[starts[k] : starts[k] + _MASKS_PER_PIECE]
        return _edges_of(logits, part, rows, cols, threshold)

    pieces = share(piece, len(starts), pure=True).result()
    if not pieces:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    slots = [slot + start for (slot, _), start in zip(pieces, starts, strict=True)]
    return np.concatenate(slots), np.concatenate([pos for _, pos in pieces])


_EDGE_ROOM = 1 << 16  # edges the buffers first hold; a mask needs room for (columns x (rows + 1)) at worst


def _edges_of(
    logits: np.ndarray, indices: np.ndarray, rows: _Axis, cols: _Axis, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """``mask_edges.edges_from`` over all of ``indices``, in buffers grown as needed."""
    slot, pos = np.empty(_EDGE_ROOM, np.int64), np.empty(_EDGE_ROOM, np.int64)
    count, done = 0, 0
    while True:
        count, done = mask_edges.edges_from(
            logits, indices, done, threshold, cols.lo, cols.hi, cols.w, cols.first_reader, cols.last_reader,
            rows.pos, rows.scale, rows.group_start, len(rows.pos), slot, pos, count,
        )  # fmt: skip
        if done == len(indices):
            return slot[:count], pos[:count]
        slot, pos = (np.concatenate([a[:count], np.empty(2 * len(a) - count, np.int64)]) for a in (slot, pos))


@dataclass(frozen=True)
class EncodedMask:
    """One thresholded, upsampled mask: its full-image RLE (also as run lengths), tight box and pixel count."""

    rle: Rle
    extent: tuple[int, int, int, int]  # x0, y0, x1, y1 pixels of the original image, max corner exclusive
    area: int
    runs: np.ndarray = field(compare=False)  # the RLE's counts as int64 (``sam3_agent.masks.rle_counts``)

    @property
    def box(self) -> BoxXYXY:
        """The tight box as float XYXY, like ``Instance.box``."""
        return tuple(float(v) for v in self.extent)  # type: ignore[return-value]


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
    order = list(range(len(mask_logits))) if indices is None else list(indices)
    logits = np.ascontiguousarray(mask_logits, dtype=np.float32)  # the engine's are already: no copy
    edge_slot, edges = _all_edges(logits, order, rows, cols, logit(mask_threshold))
    return _encode_runs(edge_slot, edges, len(order), height, width)


def _encode_runs(
    edge_slot: np.ndarray, edges: np.ndarray, n_slots: int, height: int, width: int
) -> list[EncodedMask | None]:
    """RLE, box and area per slot from its on/off edges (sorted by slot, then position; on, off, on, ...)."""
    counts, bounds, boxes, areas = mask_edges.runs_from_edges(edge_slot, edges, n_slots, height, width)
    chars, char_bounds = mask_edges.coco_chars(counts, bounds)
    text = chars.tobytes().decode("ascii")
    out: list[EncodedMask | None] = [None] * n_slots
    run_bounds, text_bounds = bounds.tolist(), char_bounds.tolist()
    for j, (box, area) in enumerate(zip(boxes.tolist(), areas.tolist(), strict=True)):
        if run_bounds[j] < run_bounds[j + 1]:
            rle = Rle(size=(height, width), counts=text[text_bounds[j] : text_bounds[j + 1]])
            runs = counts[run_bounds[j] : run_bounds[j + 1]]
            out[j] = EncodedMask(rle=rle, extent=tuple(box), area=area, runs=runs)  # type: ignore[arg-type]
    return out


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
        instance = Instance(
            id=len(instances),
            phrase=phrase,
            score=min(max(float(scores[idx]), 0.0), 1.0),
            presence_score=presence,
            box=encoded.extent,  # ints, validated into floats
            rle=encoded.rle,
            area=encoded.area,
        )
        # Seed the cached properties: overlays then need not parse the string or scan the runs again.
        instance.__dict__.update(runs=encoded.runs, mask_extent=(encoded.extent, encoded.area))
        instances.append(instance)
    if thresholds.nms_iom is not None and len(instances) > 1:
        kept = nms(instances, threshold=thresholds.nms_iom, metric="iom")
        instances = [inst.model_copy(update={"id": i}) for i, inst in enumerate(kept)]
    return instances
