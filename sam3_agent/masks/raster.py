"""Compiled loops (numba) that draw masks given as COCO run lengths straight into arrays.

A mask's runs (``masks.mask_data(rle).runs``) alternate background / foreground, starting with background,
over the flat column-major index ``x * height + y``. Each foreground run is cut where it passes a column's
bottom into vertical stretches, and only the stretches inside the target are written: no mask is decoded in
full. Targets are transposed (x, y) arrays, the runs' own order, so every stretch is one contiguous write.

The first call compiles the loops (a few seconds; cached on disk next to this file afterwards).
"""

from __future__ import annotations

import numba
import numpy as np


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
        top, left, first = places[j, 0], places[j, 1], bounds[j]
        col, row = 0, 0  # where the current run starts (tracked without a division per run)
        grid_col, a = x0, top  # the next grid column at or right of col, and its atlas row
        for k in range(first, bounds[j + 1]):
            length = counts[k]
            if (k - first) & 1:
                c, r, left_over = col, row, length
                while left_over > 0 and c < x1:  # one column's stretch per pass
                    take = min(left_over, height - r)
                    while grid_col < c:
                        grid_col, a = grid_col + step, a + 1
                    if c == grid_col:
                        b = max(-(-(r - y0) // step), 0)  # the first grid row at or below the stretch's top
                        y, end = y0 + b * step, min(r + take, y1)
                        while y < end:
                            atlas[a, left + b] = 1
                            y, b = y + step, b + 1
                    left_over, r = left_over - take, r + take
                    if r == height:
                        c, r = c + 1, 0
            row += length
            if row >= height:
                col, row = col + row // height, row % height


@numba.njit(cache=True, nogil=True)
def atlas_peaks(dist, places, shapes):
    """Per sample j (atlas rows ``places[j, 0]`` on, columns ``places[j, 1]`` on, of size ``shapes[j]``): the
    (row, col) within it of the first maximum of ``dist`` in row-major order, and whether that maximum is
    above 0. Returns an (n, 3) int64 array."""
    out = np.zeros((places.shape[0], 3), np.int64)
    for j in range(places.shape[0]):
        top, left = places[j, 0], places[j, 1]
        best = np.float32(0.0)
        for r in range(shapes[j, 0]):
            for c in range(shapes[j, 1]):
                if dist[top + r, left + c] > best:
                    best = dist[top + r, left + c]
                    out[j, 0], out[j, 1] = r, c
        out[j, 2] = best > 0
    return out


@numba.njit(cache=True, nogil=True)
def colorize(labels, colors, out):
    """``out[y, x] = colors[labels[y, x]]``: a uint8 label map to (h, w, 3) uint8 colours, ``colors``
    a (256, 3) uint8 table. (OpenCV's ``applyColorMap`` does the same but may split it over its own
    thread pool, which here only competes with the pieces already shared between two threads.)"""
    for y in range(labels.shape[0]):
        for x in range(labels.shape[1]):
            label = labels[y, x]
            out[y, x, 0], out[y, x, 1], out[y, x, 2] = colors[label, 0], colors[label, 1], colors[label, 2]
