"""Where upsampled, thresholded masks switch on and off: compiled loops (numba) over low-res mask logits.

For each mask, in one pass over its (h, w) logits and then only over its support window:

* the support: rows and columns holding a cell at the threshold (a bilinear sample is a convex mix of
  its 2x2 source cells, so it reaches the threshold only next to such a cell). Output columns that read
  no support column are off; so are source rows beyond one row around the support;
* each kept output column, interpolated across at the window's source rows, is linear between two
  source rows, so the mask switches on or off at most once inside each such interval, at a row found in
  closed form (``first_reaching``); the image's top and bottom edges are switches too;
* the switches, column after column, are the column-major pixel indices where runs start and end.
  Coinciding ones (a run ending at a column's bottom and the next starting at the next column's top)
  cancel.

The arithmetic is the numpy reference's: values in float32 as ``left + (right - left) * w``, crossings in
float64. The first call compiles the loops (a few seconds; cached on disk next to this file afterwards).
"""

from __future__ import annotations

import math

import numba
import numpy as np


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
