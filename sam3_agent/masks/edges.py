"""Low-resolution mask logits -> the COCO runs of the upsampled, thresholded masks, without the full stack.

SAM 3 predicts mask logits at a low resolution (288x288 for a 1008x1008 input) over the square-resized
image. ``Sam3Processor.post_process_instance_segmentation`` upsamples every kept mask to the full image
with one bilinear ``interpolate`` and then thresholds it: for 100 masks on a 1008x1008 image a
(100, 1008, 1008) float stack (400 MB, about 0.4 s on two CPU cores), and COCO-encoding those full masks
costs another 0.2 s. ``encode_masks`` takes each mask straight from its low-res logits to its runs:

* the support: rows and columns holding a cell at the threshold (a bilinear sample is a convex mix of
  its 2x2 source cells, so it reaches the threshold only next to such a cell). Output columns that read
  no support column are off; so are source rows beyond one row around the support;
* each kept output column, interpolated at the window's source rows (from a transposed copy of the
  window, so that a column is contiguous), is linear between two source rows, so the mask switches on
  or off at most once inside each such interval, at a row found in closed form (``first_reaching``);
  the image's top and bottom edges are switches too;
* the switches, column after column, are the column-major pixel indices where runs start and end.
  Coinciding ones (a run ending at a column's bottom and the next starting at the next column's top)
  cancel. From them, ``runs_from_edges`` takes each mask's run lengths, tight box and area, and
  ``coco_chars`` writes the COCO compressed strings.

The sampling grid is exactly the one of ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)`` from the low-res map to the original (height, width) (SAM 3 resizes without
padding, so the mask grid maps onto the original image by per-axis scaling), and thresholding happens in
logit space (p >= t  <=>  logit >= logit(t)). The result equals thresholding the full ``interpolate``
output except for pixels within float rounding of the threshold. The arithmetic is the numpy reference's:
values in float32 as ``left + (right - left) * w``, crossings in float64.

The loops are compiled (numba; the first call compiles them in a few seconds, cached on disk next to this
file afterwards) and release the GIL: the masks go in pieces to a helper thread and the calling one
(``sam3_agent.parallel.share``). Torch-free: numpy arrays in, ``MaskData`` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from sam3_agent.masks.rle import Rle
from sam3_agent.masks.runs import MaskData, remember
from sam3_agent.parallel import share


@numba.njit(cache=True, nogil=True)
def first_reaching(pos: np.ndarray, scale: float, t: float, rising: bool) -> int:
    """First index i with pos[i] >= t if rising, else pos[i] > t (len(pos) if none).

    ``pos`` is an axis's source positions, ``(i + 0.5) * scale - 0.5`` clamped at 0, non-decreasing: a closed
    form, corrected against pos where rounding puts it one off (equal to ``np.searchsorted``).
    """
    n = pos.shape[0]
    if not rising:
        t = np.nextafter(t, np.inf)  # pos > t  <=>  pos >= the next float after t
    if t <= 0.0:
        return 0  # pos is clamped to 0 at the first edge, which the closed form does not see
    guess = math.ceil(min(max((t + 0.5) / scale - 0.5, -1.0), n + 1.0))
    guess = min(max(guess, 0), n)
    if guess > 0 and pos[guess - 1] >= t:
        guess -= 1
    elif guess < n and pos[guess] < t:
        guess += 1
    return guess


@numba.njit(cache=True, nogil=True)
def _support(logits: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1): first and one-past-last rows, first and last columns with a cell at the threshold;
    r1 == 0 when there is none."""
    h, w = logits.shape
    r0, r1, c0, c1 = h, 0, w, -1
    for r in range(h):
        count = 0
        for c in range(w):  # a plain count over the row: vectorised by the compiler
            count += logits[r, c] >= threshold
        if count:
            r0, r1 = min(r0, r), r + 1
            c = 0
            while logits[r, c] < threshold:
                c += 1
            c0 = min(c0, c)
            c = w - 1
            while logits[r, c] < threshold:
                c -= 1
            c1 = max(c1, c)
    return r0, r1, c0, c1


@numba.njit(cache=True, nogil=True)
def _mask_edges(
    logits, threshold, cols_lo, cols_hi, cols_w, first_x, last_x, rows_pos, rows_scale, rows_group, height,
    slot, out_slot, out_pos, n,
):  # fmt: skip
    """Append one mask's edges (``slot``, column-major pixel index) at ``n``; the new count, or -1 when the
    buffers could not hold them (nothing is then written)."""
    h, w = logits.shape
    r0, r1, c0, c1 = _support(logits, threshold)
    if r1 == 0:
        return n
    x0, x1 = first_x[c0], last_x[c1]
    if x0 >= x1:  # downsampling: no output column reads the support
        return n
    k0, k1 = max(r0 - 1, 0), min(r1 + 1, h)
    nr = k1 - k0
    if n + (x1 - x0) * (nr + 1) > out_pos.shape[0]:
        return -1
    # The window's source columns, transposed, so that each output column is interpolated and scanned in
    # contiguous memory.
    ca, cb = max(c0 - 1, 0), min(c1 + 2, w)
    window = np.empty((cb - ca, nr), np.float32)
    for i in range(nr):
        for c in range(ca, cb):
            window[c - ca, i] = logits[k0 + i, c]
    column = np.empty(nr, np.float32)
    # Rows that may be on: window rows outside the support are off (in exact arithmetic; pinned against
    # rounding). A virtual off row lies above and below the window.
    on_lo, on_hi = (1 if k0 != 0 else 0), (nr - 1 if k1 != h else nr)
    start = n
    for x in range(x0, x1):
        left, right, weight = window[cols_lo[x] - ca], window[cols_hi[x] - ca], cols_w[x]
        for i in range(nr):
            column[i] = left[i] + (right[i] - left[i]) * weight
        on, i = False, on_lo
        while True:  # each pass finds the next switch
            if on:
                while i < on_hi and column[i] >= threshold:
                    i += 1
            else:
                while i < on_hi and not column[i] >= threshold:
                    i += 1
                if i == on_hi:
                    break
            on = not on
            k = k0 + i - 1  # the switch lies between source rows k and k + 1
            if i == 0:
                at = 0
            elif i == nr:
                at = height
            else:
                base = np.float64(column[i - 1])
                cross = k + (threshold - base) / (np.float64(column[i]) - base)
                found = first_reaching(rows_pos, rows_scale, cross, on)
                at = min(max(found, rows_group[k]), rows_group[k + 1])
            position = x * height + at
            if n > start and out_pos[n - 1] == position:
                n -= 1  # coinciding switches cancel
            else:
                out_slot[n], out_pos[n] = slot, position
                n += 1
            if i == on_hi:
                break
    return n


@numba.njit(cache=True, nogil=True)
def edges_from(
    mask_logits, indices, start, threshold, cols_lo, cols_hi, cols_w, first_x, last_x, rows_pos, rows_scale,
    rows_group, height, out_slot, out_pos, n,
):  # fmt: skip
    """Edges of masks ``indices[start:]`` (slot = position in ``indices``) appended at ``n``.

    Returns (count, next): ``next`` is ``len(indices)`` when all fitted, else the first mask that did not
    (grow the buffers and call again from there).
    """
    for j in range(start, indices.shape[0]):
        grown = _mask_edges(
            mask_logits[indices[j]], threshold, cols_lo, cols_hi, cols_w, first_x, last_x, rows_pos, rows_scale,
            rows_group, height, j, out_slot, out_pos, n,
        )  # fmt: skip
        if grown < 0:
            return n, j
        n = grown
    return n, indices.shape[0]


@numba.njit(cache=True, nogil=True)
def runs_from_edges(edge_slot, edges, n_slots, height, width):
    """COCO run lengths, tight boxes and areas of masks given by their edges (``edges_from``'s output).

    Returns (counts, bounds, boxes, areas): slot j's runs are ``counts[bounds[j]:bounds[j + 1]]`` (none for
    a slot without edges: an empty mask), its box (x0, y0, x1, y1) with the max corner exclusive and its
    pixel count ``boxes[j]`` and ``areas[j]``. Runs alternate background / foreground from background
    (the first may be 0 long); a final background run is there when it is not empty.
    """
    n_edges = edges.shape[0]
    counts = np.empty(n_edges + n_slots, np.int64)
    bounds = np.empty(n_slots + 1, np.int64)
    boxes = np.zeros((n_slots, 4), np.int64)
    areas = np.zeros(n_slots, np.int64)
    e, c = 0, 0
    for j in range(n_slots):
        bounds[j] = c
        first = e
        while e < n_edges and edge_slot[e] == j:
            e += 1
        if e == first:
            continue
        previous, top, bottom, spans = 0, height, 0, False
        for k in range(first, e):
            counts[c] = edges[k] - previous
            previous, c = edges[k], c + 1
            if (k - first) & 1:  # a run's end: its start is the edge before
                start, end = edges[k - 1], edges[k]
                areas[j] += end - start
                first_col, last_col = start // height, (end - 1) // height
                spans = spans or first_col != last_col
                top = min(top, start - first_col * height)
                bottom = max(bottom, end - last_col * height)
        if previous != height * width:
            counts[c], c = height * width - previous, c + 1
        if spans:  # a run over a column's bottom covers the next column's top
            top, bottom = 0, height
        boxes[j, 0], boxes[j, 1] = edges[first] // height, top
        boxes[j, 2], boxes[j, 3] = (edges[e - 1] - 1) // height + 1, bottom
    bounds[n_slots] = c
    return counts[:c], bounds, boxes, areas


@numba.njit(cache=True, nogil=True)
def coco_chars(counts, bounds):
    """The characters of the COCO compressed RLE strings of masks j, runs ``counts[bounds[j]:bounds[j + 1]]``.

    Returns (chars as uint8 ASCII, char_bounds): string j is ``chars[char_bounds[j]:char_bounds[j + 1]]``.
    The format (pycocotools' ``rleToString``): from a mask's fourth count on, a count is stored as its
    difference to the count two before; each value goes out in 5-bit groups, least significant first, as
    character 48 + group (+ 32 when another group follows), until the rest is the sign extension (0, or -1
    for negative values) and the last group's bit 4 agrees with it.
    """
    n = bounds.shape[0] - 1
    chars = np.empty(13 * counts.shape[0], np.uint8)  # 13 groups hold any int64
    char_bounds = np.empty(n + 1, np.int64)
    p = 0
    for j in range(n):
        char_bounds[j] = p
        for i in range(bounds[j], bounds[j + 1]):
            value = counts[i] - counts[i - 2] if i - bounds[j] > 2 else counts[i]
            more = True
            while more:
                group = value & 0x1F
                value >>= 5
                more = value != -1 if group & 0x10 else value != 0
                chars[p] = group + 48 + (32 if more else 0)
                p += 1
    char_bounds[n] = p
    return chars[:p], char_bounds


# --- the numpy driver ---------------------------------------------------------------------------------


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
    """``edges_from`` over all of ``indices``, in buffers grown as needed."""
    slot, pos = np.empty(_EDGE_ROOM, np.int64), np.empty(_EDGE_ROOM, np.int64)
    count, done = 0, 0
    while True:
        count, done = edges_from(
            logits, indices, done, threshold, cols.lo, cols.hi, cols.w, cols.first_reader, cols.last_reader,
            rows.pos, rows.scale, rows.group_start, len(rows.pos), slot, pos, count,
        )  # fmt: skip
        if done == len(indices):
            return slot[:count], pos[:count]
        slot, pos = (np.concatenate([a[:count], np.empty(2 * len(a) - count, np.int64)]) for a in (slot, pos))


def encode_masks(
    mask_logits: np.ndarray, image_size: tuple[int, int], mask_threshold: float, indices: list[int] | None = None
) -> list[MaskData | None]:
    """Upsample (h, w) mask-logit maps to ``image_size`` (height, width), threshold and COCO-encode them.

    Args:
        mask_logits: (K, h, w) float mask logits.
        image_size: (height, width) of the original image.
        mask_threshold: probability a pixel needs to be foreground.
        indices: which masks to encode, in this order (default all).

    Returns:
        Per encoded mask, its RLE, runs, tight box and area (remembered for ``masks.mask_data``); None when
        no pixel reaches the threshold.
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
) -> list[MaskData | None]:
    """RLE, box and area per slot from its on/off edges (sorted by slot, then position; on, off, on, ...)."""
    counts, bounds, boxes, areas = runs_from_edges(edge_slot, edges, n_slots, height, width)
    chars, char_bounds = coco_chars(counts, bounds)
    text = chars.tobytes().decode("ascii")
    out: list[MaskData | None] = [None] * n_slots
    run_bounds, text_bounds = bounds.tolist(), char_bounds.tolist()
    for j, (box, area) in enumerate(zip(boxes.tolist(), areas.tolist(), strict=True)):
        if run_bounds[j] < run_bounds[j + 1]:
            rle = Rle(size=(height, width), counts=text[text_bounds[j] : text_bounds[j + 1]])
            runs = counts[run_bounds[j] : run_bounds[j + 1]]
            out[j] = remember(MaskData(rle, runs, tuple(box), area))  # type: ignore[arg-type]
    return out
