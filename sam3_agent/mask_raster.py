"""Compiled loops (numba) that draw masks given as COCO run lengths straight into arrays.

A mask's runs (``Instance.runs``) alternate background / foreground, starting with background, over the
flat column-major index ``x * height + y``. Each foreground run is cut where it passes a column's bottom
into vertical stretches, and only the stretches inside the target are written: no mask is decoded in
full. Targets are transposed (x, y) arrays, the runs' own order, so every stretch is one contiguous write.

The first call compiles the loops (a few seconds; cached on disk next to this file afterwards).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np


def stack_runs(runs: Sequence[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(all masks' runs back to back as int64, bounds: mask j's are ``counts[bounds[j]:bounds[j + 1]]``).

    Raises:
        ValueError: a mask's runs are negative or do not cover height x width pixels.
    """
    lengths = np.array([len(r) for r in runs], np.int64)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    if not runs:
        return np.zeros(0, np.int64), bounds
    counts = np.concatenate(runs).astype(np.int64, copy=False)
    if np.any(lengths == 0) or np.any(counts < 0) or np.any(np.add.reduceat(counts, bounds[:-1]) != height * width):
        raise ValueError(f"the runs of a COCO RLE do not cover {height}x{width} pixels")
    return counts, bounds


@numba.njit(cache=True, nogil=True)
def paint_runs(target, counts, bounds, values, height, x0, y0):
    """Write ``values[j]`` on mask j's pixels into ``target``, masks in order (a later one covers).

    Mask j's runs are ``counts[bounds[j]:bounds[j + 1]]``; ``target`` is a transposed uint8 window whose
    element (i, k) is image pixel (x0 + i, y0 + k). Pixels outside the window are skipped.
    """
    width, rows = target.shape
    for j in range(values.shape[0]):
        value, first, pos = values[j], bounds[j], 0
        for k in range(first, bounds[j + 1]):
            length = counts[k]
            if (k - first) & 1:
                p, end = pos, pos + length
                while p < end:  # one column's stretch per pass
                    col = p // height
                    row = p - col * height
                    stop = min(end, p + height - row)
                    i, lo, hi = col - x0, max(row - y0, 0), min(row + stop - p - y0, rows)
                    if 0 <= i < width and lo < hi:
                        target[i, lo:hi] = value
                    p = stop
            pos += length


@numba.njit(cache=True, nogil=True)
def sample_runs(atlas, counts, bounds, height, boxes, steps, places):
    """Set to 1 the atlas cells of each mask's pixels on its sampling grid.

    Mask j (runs as in ``paint_runs``) is sampled at pixels (x0 + a * step, y0 + b * step) inside its box
    ``boxes[j]`` = (x0, y0, x1, y1), ``step = steps[j]``; sample (a, b) goes to atlas cell
    ``places[j] + (a, b)`` (the atlas is transposed like the runs). The caller makes room for
    ceil((x1 - x0) / step) x ceil((y1 - y0) / step) samples at each place.
    """
    for j in range(steps.shape[0]):
        step, x0, y0, x1, y1 = steps[j], boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3]
        top, left, first, pos = places[j, 0], places[j, 1], bounds[j], 0
        for k in range(first, bounds[j + 1]):
            length = counts[k]
            if (k - first) & 1:
                p, end = pos, pos + length
                while p < end:
                    col = p // height
                    row = p - col * height
                    stop = min(end, p + height - row)
                    if x0 <= col < x1 and (col - x0) % step == 0:
                        # the first grid row at or below this stretch's top
                        y = y0 + max(-(-(row - y0) // step), 0) * step
                        a = top + (col - x0) // step
                        while y < min(row + stop - p, y1):
                            atlas[a, left + (y - y0) // step] = 1
                            y += step
                    p = stop
            pos += length
