"""A mask's COCO run lengths, and what they give without decoding the mask: its box, area and crops.

The runs of a COCO RLE alternate background / foreground, starting with background (the first run may be
0 long), over the flat column-major index ``x * height + y``. ``MaskData`` is what one RLE gives once
parsed: its runs, tight integer box and pixel count. ``mask_data(rle)`` is the one way to get them; it
remembers the RLEs it parsed last (a memo of a pure function, bounded in bytes), and the engine hands
over the data it computed anyway with ``remember``, so nothing is parsed twice. ``mask_crop`` decodes one box
of a mask. Everything here is numpy, vectorised over many masks at once.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sam3_agent.masks.rle import Rle

IntBox = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels, max corner exclusive; (0, 0, 0, 0) for an empty mask."""


@dataclass(frozen=True)
class MaskData:
    """One mask's parsed RLE: ``runs`` (int64 COCO run lengths), tight ``box`` and pixel ``area``. Equal when
    the RLEs are (the rest follows from them)."""

    rle: Rle
    runs: np.ndarray = field(compare=False, repr=False)
    box: IntBox = field(compare=False)
    area: int = field(compare=False)


MEMO_BYTES = 32 << 20
"""Run-length bytes of the remembered ``MaskData`` at most (the least recently used is forgotten first):
about 2,000 masks of a 1008x1008 image."""

_memo: OrderedDict[Rle, MaskData] = OrderedDict()
_memo_lock = threading.Lock()
_memo_bytes = 0


def remember(data: MaskData) -> MaskData:
    """Keep ``data`` for ``mask_data(data.rle)`` (for producers that computed it already, like the engine)."""
    global _memo_bytes
    with _memo_lock:
        old = _memo.pop(data.rle, None)
        _memo[data.rle] = data
        _memo_bytes += data.runs.nbytes - (old.runs.nbytes if old is not None else 0)
        while _memo_bytes > MEMO_BYTES and len(_memo) > 1:
            _memo_bytes -= _memo.popitem(last=False)[1].runs.nbytes
    return data


def _recall(rle: Rle) -> MaskData | None:
    with _memo_lock:
        data = _memo.get(rle)
        if data is not None:
            _memo.move_to_end(rle)
        return data


def mask_data(rle: Rle) -> MaskData:
    """The runs, tight box and area of one RLE (see ``mask_datas``)."""
    return _recall(rle) or mask_datas([rle])[0]


def mask_datas(rles: Sequence[Rle]) -> list[MaskData]:
    """The ``MaskData`` of each RLE; those not remembered are parsed all in one vectorised pass.

    Raises:
        ValueError: an RLE is malformed (see ``rle_counts``) or its runs do not cover height x width.
    """
    found = [_recall(rle) for rle in rles]
    todo = [rle for rle, data in zip(rles, found, strict=True) if data is None]
    if not todo:
        return found  # type: ignore[return-value]
    counts, per_rle, _ = _run_lengths(todo)
    _check_cover(counts, per_rle, [rle.size[0] * rle.size[1] for rle in todo])
    runs = split_lengths(counts, per_rle)
    boxes, areas = run_boxes(runs, [rle.size[0] for rle in todo])
    fresh = iter(
        [
            remember(MaskData(rle, r, tuple(box), area))  # type: ignore[arg-type]
            for rle, r, box, area in zip(todo, runs, boxes.tolist(), areas.tolist(), strict=True)
        ]
    )
    return [data if data is not None else next(fresh) for data in found]


def mask_crop(rle: Rle, box: IntBox) -> np.ndarray:
    """The mask on rows y0:y1, columns x0:x1 of an integer box: bool (y1 - y0, x1 - x0), equal to
    ``rle_decode(rle)[y0:y1, x0:x1]`` (the box clipped to the mask) but writing only the box's pixels."""
    (columns,) = decode_run_crops([mask_data(rle).runs], [rle.size], [box])
    return _transpose(columns).view(bool)


def stack_runs(runs: Sequence[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(all masks' runs back to back as int64, bounds: mask j's are ``counts[bounds[j]:bounds[j + 1]]``).

    Raises:
        ValueError: a mask's runs are negative or do not cover height x width pixels.
    """
    if not runs:
        return np.zeros(0, np.int64), np.zeros(1, np.int64)
    counts, per_mask = _stack(runs)
    _check_cover(counts, per_mask, [height * width] * len(runs))
    return counts, np.concatenate([[0], np.cumsum(per_mask)])


def _stack(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(all run lengths back to back as int64, runs per mask)."""
    per_mask = np.array([len(r) for r in runs], np.int64)
    if np.any(per_mask == 0):
        raise ValueError("a mask has no runs (a COCO RLE has at least one count)")
    return np.concatenate(runs).astype(np.int64, copy=False), per_mask


def _check_cover(counts: np.ndarray, per_mask: np.ndarray, pixels: Sequence[int]) -> None:
    """Raise ValueError unless each mask's runs are non-negative and add up to its image's pixel count."""
    totals = np.add.reduceat(counts, _segment_starts(per_mask)) if len(counts) else np.zeros(0, np.int64)
    if np.any(counts < 0) or np.any(totals != np.asarray(pixels, np.int64)):
        raise ValueError("the runs of a COCO RLE do not cover height x width pixels")


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


def _concat_runs(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(all run lengths back to back, runs per mask, each run's number within its mask, its end (flat index))."""
    counts, per_mask = _stack(runs)
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
    _check_cover(counts, per_mask, (heights * widths).tolist())
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
