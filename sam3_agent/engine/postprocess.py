"""Fast post-processing of SAM 3 outputs: low-resolution mask logits -> ``Instance`` objects.

SAM 3 predicts mask logits at a low resolution (288x288 for a 1008x1008 input) over the square-resized
image. ``Sam3Processor.post_process_instance_segmentation`` upsamples every kept mask to the full image
with one bilinear ``interpolate`` and then thresholds it: for 100 masks on a 1008x1008 image a
(100, 1008, 1008) float stack (400 MB, about 0.4 s on two CPU cores), and COCO-encoding those full masks
costs another 0.2 s. Here each mask goes straight from its low-res logits to a COCO RLE of the full image:

* rows and columns without any low-res cell at the threshold are skipped (a bilinear sample is a convex
  mix of its 2x2 source cells, so it reaches the threshold only next to a cell that does);
* the kept columns are interpolated horizontally at full width but only at the low-res rows (by OpenCV's
  resize of whole interpolation periods, or numpy gathers); down each column the value between two source
  rows is linear, so the mask switches on or off only inside an interval whose ends lie on opposite sides
  of the threshold, once, at a row found in closed form;
* those switches, in column-major order, are the COCO run lengths, which come along with each instance
  (``Instance.runs``) so that overlays need not parse the strings again.

Finding the support windows reads every kept mask in full; half of them are read on a helper thread
(``sam3_agent.parallel``).

The sampling grid is exactly the one of ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)`` from the low-res map to the original (height, width) (not 1008x1008: SAM 3 resizes
without padding, so the mask grid maps onto the original image by per-axis scaling), and thresholding
happens in logit space (p >= t  <=>  logit >= logit(t)). The result equals thresholding the full
``interpolate`` output except for pixels within float rounding of the threshold.

Box choice: an instance's box is the tight box of its thresholded mask (XYXY pixels, max corner
exclusive, like ``sam3_agent.masks.mask_to_box``), not SAM 3's regressed ``pred_boxes``, so that box,
mask and area always agree.

This module is torch-free: it takes numpy arrays (and uses OpenCV for bounding boxes and resizing).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import cv2
import numpy as np

from sam3_agent.masks import nms
from sam3_agent.parallel import beside
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
    # (p, q) with src / dst = p / q in lowest terms, when q is small: every p source cells map onto exactly
    # q output pixels, so a window of whole periods resizes on its own with the global sampling grid.
    period: tuple[int, int] | None


_MAX_PERIOD = 32  # longer periods widen the windows too much: those axes interpolate with numpy


@lru_cache(maxsize=32)
def _axis(src: int, dst: int) -> _Axis:
    scale, ratio = src / dst, Fraction(src, dst)
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
        period=(ratio.numerator, ratio.denominator) if ratio.denominator <= _MAX_PERIOD else None,
    )


def _first_reaching(axis: _Axis, t: np.ndarray, rising: np.ndarray) -> np.ndarray:
    """First output index i with pos[i] >= t[j] where rising[j], else with pos[i] > t[j] (len(pos) if none).

    A closed form of ``np.searchsorted(axis.pos, t, side="left" / "right")`` (several times faster for
    many values), corrected against pos where rounding puts it one off.
    """
    n = len(axis.pos)
    t = np.where(rising, t, np.nextafter(t, np.inf))  # pos > t  <=>  pos >= the next float after t
    with np.errstate(over="ignore", invalid="ignore"):
        raw = np.clip((t + 0.5) / axis.scale - 0.5, -1.0, n + 1.0)
    guess = np.clip(np.ceil(raw).astype(np.int64), 0, n)
    below, here = axis.pos_padded[guess], axis.pos_padded[guess + 1]  # pos[guess - 1], pos[guess]
    guess -= below >= t
    guess += here < t
    # pos is clamped to 0 at the first edge, which the closed form does not see.
    guess[t <= 0] = 0
    return guess


@dataclass(frozen=True)
class _Switches:
    """Candidate on/off switches of several masks (flat arrays, one entry per switch, sorted by slot,
    then column, then row): in output column ``col``, between source rows ``row`` and ``row + 1``.
    Where ``inner`` is False the switch is at the image's top edge (row -1) or bottom edge (row h - 1).
    """

    slot: np.ndarray  # which mask (0..n-1, non-decreasing)
    col: np.ndarray  # output column
    row: np.ndarray  # source row k of the interval [k, k + 1] the switch lies in
    inner: np.ndarray  # bool: between two real source rows
    rising: np.ndarray  # bool: off -> on
    base: np.ndarray  # float64 upsampled-column value at row k
    step: np.ndarray  # float64 value at row k + 1 minus value at row k


class _SupportFinder:
    """Finds each (h, w) mask's support window; one reusable scratch buffer for all masks of a call."""

    def __init__(self, h: int, w: int, cols: _Axis, threshold: float) -> None:
        self.threshold = threshold
        self.support = np.empty((h, w), dtype=bool)
        # Output columns reading low-res column c: from first_x[c] (hi >= c) to last_x[c] (lo <= c, exclusive).
        self.first_x = np.searchsorted(cols.hi, np.arange(w), side="left").tolist()
        self.last_x = np.searchsorted(cols.lo, np.arange(w), side="right").tolist()

    def window(self, logits: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x0, x1, k0, k1) of one mask's window, or None when no output pixel can reach the threshold.

        Only output columns x0:x1 reading a support column (a cell at the threshold) are kept, and only
        source rows k0:k1 from just above to just below the support.
        """
        np.greater_equal(logits, self.threshold, out=self.support)
        c0, r0, n_cols, n_rows = cv2.boundingRect(self.support.view(np.uint8))
        if n_cols == 0:
            return None
        x0, x1 = self.first_x[c0], self.last_x[c0 + n_cols - 1]
        if x0 >= x1:  # downsampling: no output column reads the support
            return None
        return x0, x1, max(r0 - 1, 0), min(r0 + n_rows + 1, len(self.support))


def _fill_windows(
    masks: list[np.ndarray],
    windows: np.ndarray,
    cols: _Axis,
    threshold: float,
    flat_values: np.ndarray,
    flat_above: np.ndarray,
    value_starts: np.ndarray,
    above_starts: np.ndarray,
) -> None:
    """Write each mask's output columns x0:x1 interpolated at source rows k0:k1, and where they reach the threshold.

    ``windows`` is (n, 4) x0, x1, k0, k1. Mask j's ``values`` (nx, n_rows) float32 start at
    ``value_starts[j]`` of ``flat_values``; its ``above`` (nx, n_rows + 2), all False on entry, at
    ``above_starts[j]`` of ``flat_above``: values >= the threshold between two virtual "off" rows, so that
    the image's top and bottom edges are switches like any other (only source rows 0 and h - 1 can be "on"
    next to them: the window reaches one row beyond the support, and rows outside the support are off).
    """
    h, w = masks[0].shape
    x0, x1, k0, k1 = windows.T
    periods = _period_spans(cols, x0, x1, w) if cols.period is not None else None
    rows = zip(k0.tolist(), k1.tolist(), (x1 - x0).tolist(), value_starts.tolist(), above_starts.tolist(), strict=True)
    for j, (logits, (r0, r1, nx, vs, ab)) in enumerate(zip(masks, rows, strict=True)):
        values = flat_values[vs : vs + nx * (r1 - r0)].reshape(nx, r1 - r0)
        if periods is not None:
            ws, we, offset, n = periods[j]
            resized = cv2.resize(logits[r0:r1, ws:we], (n, r1 - r0), interpolation=cv2.INTER_LINEAR)
            cv2.transpose(resized[:, offset : offset + nx], dst=values)
        else:
            source = logits[r0:r1].T  # (low-res cols, window rows), strided
            lo, hi = cols.lo[x0[j] : x1[j]], cols.hi[x0[j] : x1[j]]
            left = source[lo]
            np.subtract(source[hi], left, out=values)
            values *= cols.w[x0[j] : x1[j], None]
            values += left
        above = flat_above[ab : ab + nx * (r1 - r0 + 2)].reshape(nx, r1 - r0 + 2)
        np.greater_equal(values, threshold, out=above[:, 1:-1])
        # Window rows outside the support are off (in exact arithmetic; pin them against rounding).
        if r0 != 0:
            above[:, 1] = False
        if r1 != h:
            above[:, -2] = False


def _period_spans(cols: _Axis, x0: np.ndarray, x1: np.ndarray, width: int) -> list[tuple[int, int, int, int]]:
    """Per window of output columns x0:x1: (ws, we, offset, n) to resize source cells ws:we onto n columns,
    of which x0:x1 are offset:offset + x1 - x0.

    OpenCV's bilinear resize samples like ``interpolate(align_corners=False)``. Run on whole periods of the
    axis (source cells ws:we, a multiple of p, onto output pixels xs:xs + n, a multiple of q), it puts every
    output pixel at its global position. The span holds every cell that columns x0:x1 read, so OpenCV's
    border replication reaches them only at the image's own edges, as torch's clamping does.
    """
    p, q = cols.period  # type: ignore[misc]
    ws = cols.lo[x0] // p * p
    we = np.minimum(-(-(cols.hi[x1 - 1] + 1) // p) * p, width)
    xs = ws // p * q
    return list(zip(ws.tolist(), we.tolist(), (x0 - xs).tolist(), ((we - ws) // p * q).tolist(), strict=True))


def _find_windows(masks: list[np.ndarray], cols: _Axis, threshold: float) -> list[tuple[int, int, int, int] | None]:
    """``_SupportFinder.window`` of each (h, w) mask.

    This reads every mask in full, in calls that release the GIL: half of the masks go to the helper
    thread. (Filling the windows afterwards is many small calls, which one thread does faster.)
    """

    def find(part: list[np.ndarray]) -> list[tuple[int, int, int, int] | None]:
        finder = _SupportFinder(*masks[0].shape, cols, threshold)  # a scratch buffer of its own
        return [finder.window(logits) for logits in part]

    if len(masks) < 16:
        return find(masks) if masks else []
    odd = beside(find, masks[1::2])
    found: list[tuple[int, int, int, int] | None] = [None] * len(masks)
    found[0::2] = find(masks[0::2])
    found[1::2] = odd.result()
    return found


def _collect_switches(
    mask_logits: np.ndarray, indices: list[int], rows: _Axis, cols: _Axis, threshold: float
) -> tuple[_Switches, list[int]]:
    """Switch candidates of masks ``indices`` and, per slot, which of them it is (empty masks get no slot).

    Per mask only its window is computed, into one flat buffer for all masks; everything per switch is done
    once for all masks.
    """
    masks = [np.asarray(mask_logits[i], dtype=np.float32) for i in indices]  # views when already float32
    found = _find_windows(masks, cols, threshold)
    kept = [j for j, window in enumerate(found) if window is not None]
    windows = [found[j] for j in kept]  # type: ignore[misc]
    slots = [indices[j] for j in kept]
    if not windows:
        empty = np.zeros(0, dtype=np.int64)
        flags, floats = empty.astype(bool), empty.astype(np.float64)
        return _Switches(empty, empty, empty, flags, flags, floats, floats), []
    kept_windows = np.array(windows, dtype=np.int64).reshape(-1, 4)
    x0, x1, k0, k1 = kept_windows.T
    len_cols, n_rows = x1 - x0, k1 - k0
    sizes, padded_sizes = len_cols * n_rows, len_cols * (n_rows + 2)
    value_starts, above_starts = np.cumsum(sizes) - sizes, np.cumsum(padded_sizes) - padded_sizes
    flat_values = np.empty(int(sizes.sum()), dtype=np.float32)
    flat_above = np.zeros(int(padded_sizes.sum()), dtype=bool)
    _fill_windows(
        [masks[j] for j in kept], kept_windows, cols, threshold, flat_values, flat_above, value_starts, above_starts
    )
    # A switch lies between padded rows ji and ji + 1 of a column; padding rows are off, so nothing is found
    # between two columns or two masks.
    at = np.flatnonzero(flat_above[:-1] != flat_above[1:])
    per_slot = np.diff(np.searchsorted(at, above_starts), append=len(at))  # switches of each mask
    slot = np.repeat(np.arange(len(per_slot)), per_slot)
    n_rows = n_rows[slot]
    xi, ji = np.divmod(at - above_starts[slot], n_rows + 2)
    row_start = value_starts[slot] + xi * n_rows
    base = flat_values[row_start + np.clip(ji - 1, 0, n_rows - 1)].astype(np.float64)
    step = flat_values[row_start + np.minimum(ji, n_rows - 1)].astype(np.float64) - base
    rising = flat_above[at + 1]
    inner = (ji > 0) & (ji < n_rows)
    return _Switches(slot, xi + x0[slot], ji - 1 + k0[slot], inner, rising, base, step), slots


def _switch_positions(sw: _Switches, rows: _Axis, threshold: float) -> np.ndarray:
    """Column-major pixel index (row + col * height) of every switch; non-decreasing within a slot."""
    height = len(rows.pos)
    # Computed for all switches, edge ones included (whose results are then replaced): cheaper than
    # selecting the inner ones first.
    with np.errstate(divide="ignore", invalid="ignore"):  # inner switches have step != 0
        cross = np.where(sw.inner, sw.row + (threshold - sw.base) / sw.step, 0.0)
    found = _first_reaching(rows, cross, sw.rising)
    inside = np.clip(found, rows.group_start[sw.row], rows.group_start[sw.row + 1])  # row -1 wraps: replaced
    at = np.where(sw.inner, inside, np.where(sw.row < 0, 0, height))
    return sw.col * height + at


@dataclass(frozen=True)
class EncodedMask:
    """One thresholded, upsampled mask: its full-image RLE (also as run lengths), tight box and pixel count."""

    rle: Rle
    box: BoxXYXY  # pixels of the original image, max corner exclusive
    area: int
    runs: np.ndarray = field(compare=False)  # the RLE's counts as int64 (``sam3_agent.masks.rle_counts``)


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
    if len(key) and np.any(key[1:] == key[:-1]):
        first = np.flatnonzero(np.diff(key, prepend=-1))
        keep = first[np.add.reduceat(np.where(sw.rising, 1, -1), first) != 0]
        edge_slot, positions = sw.slot[keep], positions[keep]
    else:
        edge_slot = sw.slot
    encoded = _encode_runs(edge_slot, positions, len(slots), height, width)
    by_index = dict(zip(slots, encoded, strict=True))
    return [by_index.get(i) for i in order]


def _encode_runs(
    edge_slot: np.ndarray, edges: np.ndarray, n_slots: int, height: int, width: int
) -> list[EncodedMask | None]:
    """RLE, box and area per slot from its on/off edges (sorted by slot, then position; on, off, on, ...)."""
    bounds = np.searchsorted(edge_slot, np.arange(n_slots + 1))
    filled = np.flatnonzero(bounds[1:] > bounds[:-1])
    if len(filled) == 0:
        return [None] * n_slots
    starts, ends = edges[0::2], edges[1::2]
    first_run = bounds[filled] // 2  # each slot's runs: first_run[j] .. next slot's first run
    # COCO counts: the gap before each run and the run itself, alternating; each mask restarts at 0.
    gaps = np.diff(edges, prepend=0)
    gaps[bounds[filled]] = edges[bounds[filled]]
    tails = height * width - edges[bounds[filled + 1] - 1]
    areas = np.add.reduceat(ends - starts, first_run)
    first_col, last_col = starts // height, (ends - 1) // height
    x0, x1 = first_col[first_run], last_col[bounds[filled + 1] // 2 - 1] + 1
    top = np.minimum.reduceat(starts % height, first_run)
    bottom = np.maximum.reduceat((ends - 1) % height, first_run) + 1
    spans = np.add.reduceat((first_col != last_col).astype(np.int64), first_run) > 0
    top[spans], bottom[spans] = 0, height  # a run spanning columns covers a column's bottom and the next's top
    with_tail = tails != 0
    counts = np.insert(gaps, bounds[filled + 1][with_tail], tails[with_tail])
    lengths = bounds[filled + 1] - bounds[filled] + with_tail
    count_starts = np.concatenate([[0], np.cumsum(lengths)])
    strings = _coco_strings(counts, count_starts)
    bounds = count_starts.tolist()
    runs = [counts[a:b] for a, b in itertools.pairwise(bounds)]
    boxes = np.stack([x0, top, x1, bottom], axis=1).astype(np.float64).tolist()
    out: list[EncodedMask | None] = [None] * n_slots
    for j, (slot, area) in enumerate(zip(filled.tolist(), areas.tolist(), strict=True)):
        rle = Rle(size=(height, width), counts=strings[j])
        out[slot] = EncodedMask(rle=rle, box=tuple(boxes[j]), area=area, runs=runs[j])
    return out


def _coco_strings(counts: np.ndarray, starts: np.ndarray) -> list[str]:
    """COCO's compressed RLE strings of several masks, all in one numpy pass.

    ``counts`` holds every mask's run lengths (int64, >= 0) back to back; mask j's are
    ``counts[starts[j]:starts[j + 1]]``. COCO's string format: from the fourth count on, each count is
    stored as its difference to the count two before; each value is written in 5-bit groups, least
    significant first, as characters 48 + group (+ 32 when another group follows), until the rest of the
    value is its sign extension (0, or -1 for negative values) and the last group's bit 4 agrees with it.
    """
    value = counts.copy()
    value[2:] -= counts[:-2]
    head = (starts[:-1, None] + np.arange(3)).ravel()  # each mask's first three counts stay as they are
    head = head[head < np.repeat(starts[1:], 3)]
    value[head] = counts[head]
    # Groups a value needs: its bits up to and including the sign bit, 5 per group (at least one group).
    magnitude = np.where(value < 0, ~value, value)
    n_groups = np.frexp(magnitude.astype(np.float64))[1] // 5 + 1  # frexp: the bit length, exact below 2**53
    group_end = np.cumsum(n_groups)
    group = np.arange(int(group_end[-1]) if len(group_end) else 0) - np.repeat(group_end - n_groups, n_groups)
    more = group < np.repeat(n_groups - 1, n_groups)
    chars = ((np.repeat(value, n_groups) >> (5 * group)) & 0x1F) + 48 + 32 * more
    text = chars.astype(np.uint8).tobytes().decode("ascii")
    ends = np.concatenate([[0], group_end])[starts].tolist()
    return [text[a:b] for a, b in itertools.pairwise(ends)]


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
            box=encoded.box,
            rle=encoded.rle,
            area=encoded.area,
        )
        # Seed the cached properties: overlays then need not parse the string or scan the runs again.
        x0, y0, x1, y1 = (int(v) for v in encoded.box)
        instance.__dict__.update(runs=encoded.runs, mask_extent=((x0, y0, x1, y1), encoded.area))
        instances.append(instance)
    if thresholds.nms_iom is not None and len(instances) > 1:
        kept = nms(instances, threshold=thresholds.nms_iom, metric="iom")
        instances = [inst.model_copy(update={"id": i}) for i, inst in enumerate(kept)]
    return instances
